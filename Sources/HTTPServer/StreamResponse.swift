import CMicroHTTPD
import Logging
import Synchronization

/// A streamed response as libmicrohttpd's content reader sees it (its `cls`): asks the
/// stream for bytes, suspends the connection while the stream has none (watching the socket
/// for a hang-up meanwhile), and resumes it when the stream wakes it.
final class StreamResponse: @unchecked Sendable {
    private struct State {
        var suspended = false
        /// The stream woke while the connection was not suspended: read again before suspending.
        var woken = false
        var stopping = false
        var clientGone = false
        var watch: DisconnectWatcher.Registration?
    }

    let stream: any HTTPBodyStream
    let connection: ConnectionRef
    let logger: Logger
    private let hangups: DisconnectWatcher?
    private let onFree: @Sendable (StreamResponse) -> Void
    /// The MHD_Response, set once right after it is created (for trailers).
    var response: OpaquePointer?
    private let state = Mutex(State())

    init(
        stream: any HTTPBodyStream, connection: ConnectionRef, logger: Logger, hangups: DisconnectWatcher?,
        onFree: @escaping @Sendable (StreamResponse) -> Void
    ) {
        self.stream = stream
        self.connection = connection
        self.logger = logger
        self.hangups = hangups
        self.onFree = onFree
    }

    /// MHD_ContentReaderCallback: the next bytes, 0 after suspending, or an end marker.
    func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
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
            // Suspended under the lock, with the flag: wake() resumes only a suspended connection.
            let suspended = state.withLock { state -> Bool in
                if state.woken {
                    state.woken = false
                    return false
                }
                MHD_suspend_connection(connection.pointer)
                state.suspended = true
                return true
            }
            // Returning 0 without suspending makes libmicrohttpd ask again at once: only when woken meanwhile.
            guard suspended else { return 0 }
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
        let (resume, watch) = state.withLock { state -> (Bool, DisconnectWatcher.Registration?) in
            guard state.suspended else {
                state.woken = true
                return (false, nil)
            }
            state.suspended = false
            defer { state.watch = nil }
            return (true, state.watch)
        }
        watch?.cancel()
        if resume { MHD_resume_connection(connection.pointer) }
    }

    /// Ends the stream at the next read (the server is stopping).
    func stopForShutdown() {
        state.withLock { $0.stopping = true }
        wake()
    }

    /// MHD_ContentReaderFreeCallback: the response is gone.
    func freed() {
        let watch = state.withLock { state -> DisconnectWatcher.Registration? in
            defer { state.watch = nil }
            return state.watch
        }
        watch?.cancel()
        stream.close()
        onFree(self)
    }

    /// A client that hangs up while the connection is suspended is noticed only after a
    /// resume: resume it then and end the body, so that libmicrohttpd closes the connection and
    /// frees the response (which cancels the stream).
    private func watchForHangup() {
        guard let hangups else { return }
        let registration = hangups.watch(connection) { [weak self] in
            // Resumed, libmicrohttpd would ask for data again before it looks at the socket:
            // end the body at that next read.
            self?.state.withLock { $0.clientGone = true }
            self?.wake()
        }
        let stale = state.withLock { state -> DisconnectWatcher.Registration? in
            // Woken between the suspend and now: nothing to watch.
            guard state.suspended else { return registration }
            state.watch = registration
            return nil
        }
        stale?.cancel()
    }
}
