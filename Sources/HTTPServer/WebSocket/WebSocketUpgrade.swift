import CGnuTLS

/// An answer that turns the connection into a WebSocket (RFC 6455): what the handshake agreed
/// on, and what to do once the connection is one. A route answers with it
/// (``HTTPResponse/webSocket(_:)``) after checking the request's head (``WebSocketUpgrade/accept(_:subprotocol:)``)
/// and everything else the route requires; the server then sends `101 Switching Protocols`
/// and hands the connection over.
public struct WebSocketUpgrade: Sendable {
    /// `Sec-WebSocket-Accept`.
    public var accept: String
    /// The subprotocol agreed on (`Sec-WebSocket-Protocol`).
    public var subprotocol: String
    /// The largest message taken from the client (larger: close 1009).
    public var maxMessage: Int
    /// Runs on the event loop once the connection is a WebSocket: the handler of its messages.
    /// Never runs if the client leaves before (what the route held is let go with this closure).
    public var open: @Sendable (WebSocketConnection) -> any WebSocketHandler

    public init(
        accept: String, subprotocol: String, maxMessage: Int,
        open: @escaping @Sendable (WebSocketConnection) -> any WebSocketHandler
    ) {
        self.accept = accept
        self.subprotocol = subprotocol
        self.maxMessage = maxMessage
        self.open = open
    }

    /// Checks that `request` opens a WebSocket handshake (RFC 6455 §4.2.1: HTTP/1.1,
    /// `Upgrade: websocket`, `Connection: Upgrade`, version 13, a 16-byte key) offering
    /// `subprotocol`; the `Sec-WebSocket-Accept` value.
    public static func accept(_ request: HTTPRequest, subprotocol: String) throws(WebSocketHandshakeProblem) -> String {
        guard request.version == "HTTP/1.1" else { throw .notHTTP11 }
        guard tokens(request, "Upgrade").contains("websocket"), tokens(request, "Connection").contains("upgrade") else {
            throw .upgradeRequired
        }
        guard request.headers["Sec-WebSocket-Version"]?.trimmed == "13" else { throw .version }
        guard let key = request.headers["Sec-WebSocket-Key"]?.trimmed, Base64.decode(key)?.count == 16 else {
            throw .key
        }
        guard offeredSubprotocols(request).contains(subprotocol) else { throw .subprotocol(wanted: subprotocol) }
        return acceptValue(key: key)
    }

    /// The subprotocols a handshake offers (every `Sec-WebSocket-Protocol` field, comma
    /// separated), in order; none unless it asks to upgrade to a WebSocket.
    public static func offeredSubprotocols(_ request: HTTPRequest) -> [String] {
        guard tokens(request, "Upgrade").contains("websocket") else { return [] }
        return request.headers.fields.filter { HTTPHeaders.sameName($0.name, "Sec-WebSocket-Protocol") }
            .flatMap { $0.value.split(separator: ",").map { $0.trimmed } }
    }

    /// base64(SHA-1(key + the RFC's GUID)).
    static func acceptValue(key: String) -> String {
        let input = Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        _ = input.withUnsafeBytes { gnutls_hash_fast(GNUTLS_DIG_SHA1, $0.baseAddress, $0.count, &digest) }
        return Base64.encode(digest)
    }

    /// The comma-separated tokens of every `name` field, lowercased.
    private static func tokens(_ request: HTTPRequest, _ name: String) -> [String] {
        request.headers.fields.filter { HTTPHeaders.sameName($0.name, name) }
            .flatMap { $0.value.split(separator: ",").map { $0.trimmed.lowercased() } }
    }
}

extension HTTPResponse {
    /// `101 Switching Protocols` to a WebSocket, then `upgrade.open`.
    public static func webSocket(_ upgrade: WebSocketUpgrade) -> HTTPResponse {
        var response = HTTPResponse(status: 101)
        response.upgrade = upgrade
        return response
    }
}

/// A request to a WebSocket route that is not a WebSocket handshake it can take.
public enum WebSocketHandshakeProblem: HTTPResponseError, Sendable, Equatable {
    case notHTTP11
    case upgradeRequired
    case version
    case key
    case subprotocol(wanted: String)

    public var status: Int {
        switch self {
        case .upgradeRequired, .version: 426
        case .notHTTP11, .key, .subprotocol: 400
        }
    }

    public var code: String {
        switch self {
        case .upgradeRequired, .version, .notHTTP11: "websocket-upgrade-required"
        case .key: "invalid-websocket-handshake"
        case .subprotocol: "websocket-subprotocol"
        }
    }

    public var title: String {
        switch self {
        case .upgradeRequired, .version, .notHTTP11: "WebSocket upgrade required"
        case .key: "Invalid WebSocket handshake"
        case .subprotocol: "Unsupported WebSocket subprotocol"
        }
    }

    public var detail: String {
        switch self {
        case .notHTTP11: "A WebSocket opens over HTTP/1.1."
        case .upgradeRequired: "This route is a WebSocket: send 'Upgrade: websocket' and 'Connection: Upgrade'."
        case .version: "This server speaks WebSocket version 13 (RFC 6455)."
        case .key: "Sec-WebSocket-Key must be 16 bytes in base64."
        case .subprotocol(let wanted): "Offer the subprotocol '\(wanted)' in Sec-WebSocket-Protocol."
        }
    }

    public var headers: HTTPHeaders {
        switch self {
        case .upgradeRequired: ["Upgrade": "websocket", "Connection": "Upgrade"]
        case .version: ["Sec-WebSocket-Version": "13"]
        default: [:]
        }
    }
}

/// Base64 (RFC 4648, with padding), for the handshake's key and answer.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                output.append(position <= chunk.count ? alphabet[(value >> (18 - 6 * position)) & 0x3f] : 0x3d)
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        var index = 0
        while index < characters.count {
            var value = 0
            var padding = 0
            for position in 0..<4 {
                let character = characters[index + position]
                if character == 0x3d {
                    guard index + 4 == characters.count, position >= 2 else { return nil }
                    padding += 1
                    value <<= 6
                } else {
                    guard padding == 0, let digit = alphabet.firstIndex(of: character) else { return nil }
                    value = value << 6 | digit
                }
            }
            for position in 0..<(3 - padding) { output.append(UInt8((value >> (16 - 8 * position)) & 0xff)) }
            index += 4
        }
        return output
    }
}

extension StringProtocol {
    fileprivate var trimmed: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
