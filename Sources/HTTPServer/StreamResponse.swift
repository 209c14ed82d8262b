import CMicroHTTPD
import EventLoop
import Logging
import Synchronization

/// A streamed response as libmicrohttpd's content reader sees it (its `cls`): asks the
/// stream for bytes, suspends the connection while the stream has none (watching the socket
/// for a hang-up meanwhile), and resumes it, on the event loop, when the stream wakes it.
final class StreamResponse: @unchecked Sendable {
    /// How the body goes out: not decided before the first read; read into libmicrohttpd's
    /// buffer; or written to the socket by the stream itself.
    private enum Mode {
        case undecided, read
        case direct(SocketBodyWriter)
    }

    private struct State {
        var mode = Mode.undecided
        /// How a directly written body ended (then the connection was resumed).
        var directEnding: HTTPStreamRead?
        var suspended = false
        /// The stream woke while the connection was not suspended: read again before suspending.
        var woken = false
        var stopping = false
        var clientGone = false
    }

    let stream: any HTTPBodyStream
    let connection: ConnectionRef
    let logger: BoundLogger
    private let resumer: ConnectionResumer
    private var loop: EventLoop { resumer.loop }
    private let onFree: @Sendable (StreamResponse) -> Void
    /// The MHD_Response, set once right after it is created (for trailers).
    var response: OpaquePointer?
    /// The stream may write to the socket itself (plain HTTP/1.1, so chunked, and no TLS).
    private let directAllowed: Bool
    /// The watch on the connection's socket (nil if it could not be watched).
    private let connectionWatch: ConnectionWatch?
    private let state = Mutex(State())

    init(
        stream: any HTTPBodyStream, connection: ConnectionRef, logger: BoundLogger, resumer: ConnectionResumer,
        directAllowed: Bool, onFree: @escaping @Sendable (StreamResponse) -> Void
    ) {
        self.stream = stream
        self.connection = connection
        self.logger = logger
        self.resumer = resumer
        self.directAllowed = directAllowed
        self.connectionWatch = ConnectionWatch.of(connection.pointer)
        self.onFree = onFree
    }

    /// MHD_ContentReaderCallback: the next bytes, 0 after suspending, or an end marker. The
    /// first call comes once the headers are on the wire: a stream that can write to the
    /// socket itself takes it over then (the connection suspended until its body ends).
    func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        switch state.withLock({ $0.mode }) {
        case .undecided:
            if let writer = takeOverSocket() { return startDirect(writer) }
            state.withLock { $0.mode = .read }
        case .direct:
            return endDirect()
        case .read:
            break
        }
        let (stopping, clientGone) = state.withLock { ($0.stopping, $0.clientGone) }
        if stopping || clientGone {
            logger.notice(
                "stream ended", metadata: ["http.stream.end": .string(clientGone ? "client hung up" : "server stopping")])
            return usbhttpd_mhd_reader_end_with_error
        }
        switch stream.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max)) {
        case .bytes(let count):
            return count
        case .wait:
            // Decided under the lock, suspended outside it (on the loop, the only thread that
            // resumes: a wake from elsewhere is queued there, so it comes after this suspend).
            let suspend = state.withLock { state -> Bool in
                if state.woken {
                    state.woken = false
                    return false
                }
                state.suspended = true
                return true
            }
            // Returning 0 without suspending makes libmicrohttpd ask again at once: only when woken meanwhile.
            guard suspend else { return 0 }
            MHD_suspend_connection(connection.pointer)
            watchForHangup()
            return 0
        case .end(let trailers):
            if let response {
                for field in trailers { _ = MHD_add_response_footer(response, field.name, field.value) }
            }
            return usbhttpd_mhd_reader_end_of_stream
        case .fail(let reason):
            logger.warning("stream ended early", metadata: ["http.stream.end": .string(reason)])
            return usbhttpd_mhd_reader_end_with_error
        }
    }

    /// The stream has something (or has ended): resume the connection if it is suspended.
    func wake() {
        let resume = state.withLock { state -> Bool in
            guard state.suspended else {
                state.woken = true
                return false
            }
            state.suspended = false
            return true
        }
        guard resume else { return }
        resumer.resume(connection) { [connectionWatch] in connectionWatch?.stopWaiting() }
    }

    /// Ends the stream at the next read (the server is stopping); a directly written body
    /// ends after what is queued, as failed.
    func stopForShutdown() {
        let mode = state.withLock { state -> Mode in
            state.stopping = true
            return state.mode
        }
        if case .direct(let writer) = mode {
            loop.execute { writer.end(.fail(reason: "server stopping")) }
        } else {
            wake()
        }
    }

    // MARK: Written by the stream itself

    /// A writer on the connection's socket, if the stream can write itself and the socket can
    /// be watched.
    private func takeOverSocket() -> SocketBodyWriter? {
        guard directAllowed, stream is any HTTPSocketBodyStream, let connectionWatch else { return nil }
        return SocketBodyWriter(
            connection: connectionWatch, framing: .chunked, loop: loop,
            onEnd: { [weak self] ending in self?.directEnded(ending) })
    }

    /// Suspends the connection and hands the socket's writer to the stream.
    private func startDirect(_ writer: SocketBodyWriter) -> Int {
        state.withLock { $0.mode = .direct(writer) }
        MHD_suspend_connection(connection.pointer)
        (stream as? any HTTPSocketBodyStream)?.attach(writer)
        return 0
    }

    /// The writer ended the body: resume the connection, whose next read ends it.
    private func directEnded(_ ending: HTTPStreamRead) {
        state.withLock { $0.directEnding = ending }
        resumer.resume(connection)
    }

    /// The read after a directly written body: the last chunk (and trailers), or a cut connection.
    private func endDirect() -> Int {
        switch state.withLock({ $0.directEnding }) {
        case .end(let trailers):
            if let response {
                for field in trailers { _ = MHD_add_response_footer(response, field.name, field.value) }
            }
            return usbhttpd_mhd_reader_end_of_stream
        case .fail(let reason):
            logger.warning("stream ended early", metadata: ["http.stream.end": .string(reason)])
            return usbhttpd_mhd_reader_end_with_error
        default:
            return usbhttpd_mhd_reader_end_with_error
        }
    }

    /// MHD_ContentReaderFreeCallback: the response is gone.
    func freed() {
        stream.close()
        onFree(self)
    }

    /// A client that hangs up while the connection is suspended is noticed only after a
    /// resume: resume it then and end the body, so that libmicrohttpd closes the connection and
    /// frees the response (which cancels the stream).
    private func watchForHangup() {
        connectionWatch?.waitForHangup { [weak self] in
            // Resumed, libmicrohttpd would ask for data again before it looks at the socket:
            // end the body at that next read.
            self?.state.withLock { $0.clientGone = true }
            self?.wake()
        }
    }
}
