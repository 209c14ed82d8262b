import Foundation
import Glibc

/// A bare TCP connection, for tests that must hang up in the middle of a request or send
/// bytes no HTTP client library would.
public final class RawConnection: @unchecked Sendable {
    private var fd: Int32
    /// The socket (-1 once closed).
    public var descriptor: Int32 { fd }

    /// Connects to `host` (an IPv4 literal) on `port`.
    public init(host: String = "127.0.0.1", port: Int) throws {
        // Close-on-exec: a child process spawned meanwhile (the lab) must not keep it open.
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw TestFailure("connect to \(host):\(port): errno \(errno)")
        }
    }

    deinit { close() }

    /// Sends `text` as is (write CRLFs yourself).
    public func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, 0) }
            guard sent > 0 else { throw TestFailure("send: errno \(errno)") }
            offset += sent
        }
    }

    /// Whether the server closed the connection within `seconds` (a read returns end of file
    /// or an error). Data the server sent is read and dropped.
    public func closedByServer(within seconds: Double) async -> Bool {
        let fd = self.fd
        return (try? await offThePool { RawConnection.closed(fd, within: seconds) }) ?? true
    }

    private static func closed(_ fd: Int32, within seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) >= 0 else { return true }
            if poller.revents == 0 { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return true }
        }
        return false
    }

    /// A response with a Content-Length body, read within `seconds` (off the cooperative pool);
    /// nil if none came whole in time.
    public func response(within seconds: Double) async throws -> (status: Int, text: String)? {
        let fd = self.fd
        return try await offThePool { RawConnection.readResponse(fd, within: seconds) }
    }

    /// Sends `text` from a thread of its own, for bodies the server may hold back.
    public func sendOffThePool(_ text: String) async throws {
        try await offThePool { try self.send(text) }
    }

    private static func readResponse(_ fd: Int32, within seconds: Double) -> (status: Int, text: String)? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let separator = Array("\r\n\r\n".utf8)
        while ContinuousClock.now < deadline {
            if let end = received.firstRange(of: separator)?.upperBound {
                let head = String(decoding: received[..<end], as: UTF8.self)
                let lines = head.split(separator: "\r\n")
                let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                let length = lines.dropFirst().compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
                if received.count - end >= length {
                    return (status, String(decoding: received[end..<(end + length)], as: UTF8.self))
                }
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) >= 0 else { return nil }
            if poller.revents == 0 { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            received += buffer[..<count]
        }
        return nil
    }

    /// Shuts the connection down and closes the socket: the server sees the client hang up.
    public func close() {
        guard fd >= 0 else { return }
        _ = shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        fd = -1
    }
}

extension RawConnection {
    /// A whole response read within `seconds`: its head, and its body de-chunked (or of its
    /// Content-Length). `complete` says whether the body ended properly (the last chunk came);
    /// nil if not even the head came.
    public func chunkedResponse(within seconds: Double) async throws -> ChunkedResponse? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        while true {
            if let parsed = ChunkedResponse(received), parsed.complete { return parsed }
            guard ContinuousClock.now < deadline, let more = try await receive(within: 0.2) else {
                return ChunkedResponse(received)
            }
            received += more
        }
    }

    /// Whatever arrives within `seconds` (empty if nothing did); nil once the server closed.
    public func receive(within seconds: Double) async throws -> [UInt8]? {
        let fd = self.descriptor
        return try await offThePool {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(seconds * 1000)) > 0 else { return [] }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return count > 0 ? Array(buffer[..<count]) : nil
        }
    }

    /// Sends `bytes` as they are.
    public func send(bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, 0) }
            guard sent > 0 else { throw TestFailure("send: errno \(errno)") }
            offset += sent
        }
    }
}

/// A response as bytes came: status, header fields (names lowercased), the body de-chunked,
/// trailers, and whether it ended properly.
public struct ChunkedResponse: Sendable {
    public var status = 0
    public var headers: [String: String] = [:]
    public var body: [UInt8] = []
    public var trailers: [String: String] = [:]
    public var complete = false

    /// Parses what came so far; nil until the whole head is there.
    public init?(_ bytes: [UInt8]) {
        let separator = Array("\r\n\r\n".utf8)
        guard let end = bytes.firstRange(of: separator)?.upperBound else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n")
        status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        let rest = Array(bytes[end...])
        if headers["transfer-encoding"]?.lowercased() != "chunked" {
            let length = Int(headers["content-length"] ?? "0") ?? 0
            body = Array(rest.prefix(length))
            complete = rest.count >= length
            return
        }
        var offset = 0
        let crlf = Array("\r\n".utf8)
        while let lineEnd = rest[offset...].firstRange(of: crlf) {
            let sizeText = String(decoding: rest[offset..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return }
            let dataStart = lineEnd.upperBound
            if size == 0 {
                // Trailers, then an empty line.
                var position = dataStart
                while let trailerEnd = rest[position...].firstRange(of: crlf) {
                    if trailerEnd.lowerBound == position {
                        complete = true
                        return
                    }
                    let parts = String(decoding: rest[position..<trailerEnd.lowerBound], as: UTF8.self)
                        .split(separator: ":", maxSplits: 1)
                    if parts.count == 2 { trailers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
                    position = trailerEnd.upperBound
                }
                return
            }
            guard rest.count >= dataStart + size + 2 else { return }
            body += rest[dataStart..<dataStart + size]
            offset = dataStart + size + 2
        }
    }
}
