import Consoles
import HTTPServer

/// `GET …/consoles/{interface}/output` as a streamed body: the console's kept output from an
/// offset on, then (following) what it prints next, until the client leaves, `max_bytes`
/// were sent, or the console goes (the body is cut then: the client sees it end early).
///
/// Lives on the event loop, as the server calls a stream (start, read, close) and the
/// console wakes its readers there.
final class ConsoleOutputStream: HTTPBodyStream, @unchecked Sendable {
    private let console: Console
    private let follow: Bool
    private var left: Int
    /// The offset of the next byte to send.
    private(set) var cursor: UInt64
    /// Bytes the ring no longer had when this reader got to them.
    private(set) var lost: UInt64 = 0
    private var reader: UInt64?
    /// The client asked for trailers (`TE: trailers`): only then are they sent.
    private let sendsTrailers: Bool

    init(console: Console, from: UInt64, follow: Bool, maxBytes: Int?, sendsTrailers: Bool) {
        self.console = console
        self.sendsTrailers = sendsTrailers
        self.follow = follow
        self.cursor = from
        self.left = maxBytes ?? .max
    }

    func start(wake: @escaping @Sendable () -> Void) {
        console.loop.preconditionInEventLoop()
        if follow { reader = console.follow(wake) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTPStreamRead {
        console.loop.preconditionInEventLoop()
        let room = UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, left)])
        let (count, from) = console.ring.copy(from: cursor, into: room)
        lost += from - min(from, cursor)
        cursor = from + UInt64(count)
        if count > 0 {
            left -= count
            return .bytes(count)
        }
        if left == 0 || !follow { return .end(trailers: trailers) }
        if console.isGone { return .fail(reason: "the console went away (its adapter was unplugged or its driver unbound)") }
        return .wait
    }

    var trailers: HTTPHeaders {
        sendsTrailers ? ["X-Console-Next": String(cursor), "X-Console-Lost": String(lost)] : [:]
    }

    func close() {
        console.loop.preconditionInEventLoop()
        if let reader { console.unfollow(reader) }
        reader = nil
    }
}
