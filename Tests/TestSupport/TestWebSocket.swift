import Foundation
import Glibc

/// A WebSocket client for tests, written out by hand on a ``RawConnection`` so that a test can
/// send what no library would (unmasked frames, bad lengths, reserved bits, half frames).
public final class TestWebSocket: @unchecked Sendable {
    public let connection: RawConnection
    /// The handshake's answer.
    public private(set) var status = 0
    public private(set) var headers: [String: String] = [:]
    private var pending: [UInt8] = []

    /// A frame from the server.
    public struct Frame: Sendable, Equatable {
        public var opcode: UInt8
        public var fin: Bool
        public var payload: [UInt8]

        public init(opcode: UInt8, fin: Bool, payload: [UInt8]) {
            self.opcode = opcode
            self.fin = fin
            self.payload = payload
        }

        /// A close frame's code.
        public var closeCode: UInt16? {
            opcode == 8 && payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil
        }

        public var closeReason: String {
            opcode == 8 && payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
        }
    }

    /// Connects and sends the opening handshake for `path` (with `headers`); reads the answer's head.
    public init(port: Int, path: String, protocols: String? = "usbhttpd.urb.1", headers: [String: String] = [:]) async throws {
        connection = try RawConnection(port: port)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        if let protocols { request += "Sec-WebSocket-Protocol: \(protocols)\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try connection.send(request + "\r\n")
        let deadline = ContinuousClock.now + .seconds(10)
        while pending.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
            guard ContinuousClock.now < deadline, let more = try await connection.receive(within: 0.5) else {
                throw TestFailure("no handshake answer: \(String(decoding: pending, as: UTF8.self))")
            }
            pending += more
        }
        let end = pending.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound
        let lines = String(decoding: pending[..<end], as: UTF8.self).split(separator: "\r\n")
        status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { self.headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        pending.removeFirst(end)
    }

    /// The bytes of one client frame: FIN and `opcode`, masked with a random key (unless `masked` is false).
    public static func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let mask: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            bytes.append(mask | UInt8(payload.count))
        } else if payload.count <= 0xffff {
            bytes += [mask | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        } else {
            bytes.append(mask | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: payload.count >> shift)) }
        }
        guard masked else { return bytes + payload }
        let key = (0..<4).map { _ in UInt8.random(in: 0...255) }
        bytes += key
        bytes += payload.enumerated().map { $0.element ^ key[$0.offset & 3] }
        return bytes
    }

    /// Sends one binary message in one frame.
    public func send(_ payload: [UInt8]) throws { try connection.send(bytes: Self.frame(2, payload)) }

    /// Sends raw bytes (frames made with ``frame(_:_:fin:masked:)``, or anything).
    public func sendRaw(_ bytes: [UInt8]) throws { try connection.send(bytes: bytes) }

    /// The next frame within `seconds`; nil if none came whole (or the server closed first).
    public func receive(within seconds: Double = 10) async throws -> Frame? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            if let frame = takeFrame() { return frame }
            guard ContinuousClock.now < deadline, let more = try await connection.receive(within: 0.2) else { return nil }
            pending += more
        }
    }

    /// The next binary message (pongs and pings skipped); nil if none came.
    public func message(within seconds: Double = 10) async throws -> [UInt8]? {
        while let frame = try await receive(within: seconds) {
            if frame.opcode == 2 { return frame.payload }
            if frame.opcode == 8 { return nil }
        }
        return nil
    }

    /// Drops the TCP connection without a closing handshake (a client that goes away).
    public func close() { connection.close() }

    /// Whether the server closed the TCP connection within `seconds` (frames before are read and dropped).
    public func closedByServer(within seconds: Double) async -> Bool {
        await connection.closedByServer(within: seconds)
    }

    private func takeFrame() -> Frame? {
        guard pending.count >= 2 else { return nil }
        var length = Int(pending[1] & 0x7f)
        var offset = 2
        if length == 126 {
            guard pending.count >= 4 else { return nil }
            length = Int(pending[2]) << 8 | Int(pending[3])
            offset = 4
        } else if length == 127 {
            guard pending.count >= 10 else { return nil }
            length = pending[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard pending.count >= offset + length else { return nil }
        let frame = Frame(opcode: pending[0] & 0x0f, fin: pending[0] & 0x80 != 0, payload: Array(pending[offset..<offset + length]))
        pending.removeFirst(offset + length)
        return frame
    }
}
