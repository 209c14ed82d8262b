import CMicroHTTPD
import EventLoop
import Glibc
import LinuxSystem
import Logging
import SystemPackage

/// What feeds a ``SocketBodyWriter`` and hears back from it, on the event loop.
public protocol SocketBodySource: AnyObject, Sendable {
    /// The piece handed over with `tag` is wholly in the kernel: its memory may change again.
    func sent(_ tag: Int)
    /// The client went away (or its socket failed): nothing more is sent; pieces not yet
    /// reported sent never will be.
    func clientGone()
}

/// A streamed body that can write itself to the connection's socket (``SocketBodyWriter``)
/// instead of being read into libmicrohttpd's buffer: the server offers it on plain HTTP/1.1
/// connections; over TLS (or HTTP/1.0) it is read as any ``HTTPBodyStream``.
public protocol HTTPSocketBodyStream: HTTPBodyStream {
    /// From now on the stream hands its bytes to `writer` and ends through it, on the loop.
    func attach(_ writer: SocketBodyWriter)
}

/// Writes a streamed response's body itself, straight to its connection's socket, with no
/// copy in user space: while the connection is suspended libmicrohttpd leaves the socket
/// alone, so the body's pieces go out with sendmsg (chunk framing around them) from the memory
/// their owner hands over, a usbfs buffer say, which is given back as soon as the kernel has
/// all of it. When the body ends (``end(_:)``, after what is queued), the connection is
/// resumed: libmicrohttpd writes the last chunk and the trailers, or closes the connection
/// for a failed body.
///
/// It lives on the event loop: its methods are called there, and it watches the socket there
/// for a hang-up, and for room when the socket is full. Decisions about what to send are its
/// ``ChunkedWrites``'; this class makes the calls.
public final class SocketBodyWriter: @unchecked Sendable {
    private let connection: ConnectionWatch
    private var socket: FileDescriptor { connection.socket }
    private let loop: EventLoop
    private var writes: ChunkedWrites
    private var source: (any SocketBodySource)?
    /// The socket was full: waiting for room (EPOLLOUT).
    private var blocked = false
    private var flushing = false
    /// Asked to end once the queue is empty.
    private var ending: HTTPStreamRead?
    private var finished = false
    /// Called once with the body's ending; the server then resumes the connection.
    private let onEnd: (HTTPStreamRead) -> Void
    /// Room for one sendmsg: the pieces' iovecs and their size lines.
    private let iovecs: UnsafeMutableBufferPointer<iovec>
    private let headers: UnsafeMutableRawPointer
    private static let maxIovecs = 96

    /// A writer on `connection`'s socket, which it watches for a hang-up from now on.
    init(
        connection: ConnectionWatch, framing: ChunkedWrites.Framing, loop: EventLoop,
        onEnd: @escaping (HTTPStreamRead) -> Void
    ) {
        self.connection = connection
        self.loop = loop
        self.writes = ChunkedWrites(framing: framing)
        self.onEnd = onEnd
        self.iovecs = .allocate(capacity: Self.maxIovecs)
        self.headers = .allocate(byteCount: 18 * (Self.maxIovecs / 3), alignment: 8)
        connection.waitForHangup { [weak self] in self?.clientGone(reason: "client hung up") }
    }

    deinit {
        iovecs.deallocate()
        headers.deallocate()
    }

    /// Who hands over the pieces and hears what is sent (set once, when the stream attaches).
    public func feed(from source: any SocketBodySource) {
        assert(loop.inEventLoop)
        if !finished { self.source = source }
    }

    /// Queues `count` bytes at `bytes` as the body's next piece; `tag` comes back through
    /// ``SocketBodySource/sent(_:)`` once the kernel has them all. The memory must stay
    /// unchanged until then (or until the client is gone).
    public func send(_ bytes: UnsafeRawPointer, count: Int, tag: Int) {
        assert(loop.inEventLoop)
        guard !finished, ending == nil else { return }
        guard writes.append(tag: tag, bytes: bytes, count: count) else {
            source?.sent(tag)
            return
        }
        if !blocked { flush() }
    }

    /// Ends the body once everything queued is sent: `.end(trailers:)` ends it properly (the
    /// last chunk and these trailers follow), `.fail(reason:)` cuts the connection so that the
    /// client sees an incomplete body.
    public func end(_ ending: HTTPStreamRead) {
        assert(loop.inEventLoop)
        guard !finished, self.ending == nil else { return }
        self.ending = ending
        if writes.isEmpty { finish() }
    }

    /// Pieces queued and not yet sent.
    public var queued: Int { writes.count }

    private func flush() {
        guard !flushing else { return }
        flushing = true
        defer { flushing = false }
        while !writes.isEmpty && !finished {
            let count = writes.gather(into: iovecs, headers: headers)
            let sent: Int?
            do {
                sent = try StreamSocket.send(socket, UnsafeMutableBufferPointer(rebasing: iovecs[0..<count]))
            } catch {
                // EPIPE, ECONNRESET: the client is gone.
                clientGone(reason: "\(error)")
                return
            }
            guard let sent else {
                wait(forRoom: true)
                return
            }
            // Told after `writes` is updated: what the source does next (resubmit, or end the
            // body when a resubmission fails) may come back here.
            var done: [Int] = []
            writes.sent(sent) { done.append($0) }
            for tag in done { source?.sent(tag) }
        }
        if writes.isEmpty && ending != nil && !finished { finish() }
    }

    /// Waits for room in the socket, then sends on.
    private func wait(forRoom: Bool) {
        guard forRoom, !blocked else { return }
        blocked = true
        connection.waitForRoom { [weak self] in
            guard let self else { return }
            blocked = false
            flush()
        }
    }

    private func clientGone(reason: String) {
        guard !finished else { return }
        _ = writes.discard()
        let source = self.source
        stop()
        source?.clientGone()
        onEnd(.fail(reason: reason))
    }

    private func finish() {
        let ending = self.ending ?? .fail(reason: "ended")
        stop()
        onEnd(ending)
    }

    private func stop() {
        finished = true
        source = nil
        connection.stopWaiting()
    }
}
