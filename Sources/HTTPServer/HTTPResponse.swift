import FoundationEssentials

/// A response: a status, header fields and a body held in memory, or a body streamed
/// while it is made (sent chunked).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// When set, the body is this stream and `body` is ignored.
    public var stream: (any HTTPBodyStream)?
    /// When set (status 101), the connection becomes a WebSocket (``HTTPResponse/webSocket(_:)``).
    public var upgrade: WebSocketUpgrade?

    public init(status: Int = 200, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A chunked body read from `stream` as it is sent.
    public static func streaming(_ stream: any HTTPBodyStream, status: Int = 200, headers: HTTPHeaders = [:])
        -> HTTPResponse
    {
        var response = HTTPResponse(status: status, headers: headers)
        response.stream = stream
        return response
    }

    /// A JSON body (`application/json`), pretty-printed with sorted keys and snake_case names.
    public static func json(_ value: some Encodable, status: Int = 200, headers: HTTPHeaders = [:]) throws
        -> HTTPResponse
    {
        var headers = headers
        headers.set("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: headers, body: try JSON.encode(value))
    }

    /// Raw bytes (`application/octet-stream`).
    public static func bytes(_ body: [UInt8], status: Int = 200, headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.set("Content-Type", "application/octet-stream")
        return HTTPResponse(status: status, headers: headers, body: body)
    }
}

/// The one JSON style of the API.
public enum JSON {
    /// Made once: an encoder is a class with options behind a lock, not worth making per answer.
    private static let pretty: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()

    private static let compact: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()

    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        var data = Array(try pretty.encode(value))
        data.append(0x0a)
        return data
    }

    /// The same style on one line, without the final newline (for Server-Sent Events' `data:`).
    public static func line(_ value: some Encodable) throws -> [UInt8] {
        Array(try compact.encode(value))
    }

    /// `text` as a JSON string literal, quotes included, in the API's style (slashes not
    /// escaped), appended to `output`: for answers written without an encoder.
    public static func appendString(_ text: String, to output: inout [UInt8]) {
        output.append(0x22)
        for byte in text.utf8 {
            switch byte {
            case 0x22: output += [0x5c, 0x22]
            case 0x5c: output += [0x5c, 0x5c]
            case 0x0a: output += [0x5c, 0x6e]
            case 0x0d: output += [0x5c, 0x72]
            case 0x09: output += [0x5c, 0x74]
            case 0x08: output += [0x5c, 0x62]
            case 0x0c: output += [0x5c, 0x66]
            case 0..<0x20:
                let hex: StaticString = "0123456789abcdef"
                output += [0x5c, 0x75, 0x30, 0x30, hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 0xf)]]
            default: output.append(byte)
            }
        }
        output.append(0x22)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(bytes))
    }
}
