import CMicroHTTPD
import EventLoop
import Logging

/// A streamed response as libmicrohttpd's content reader sees it (its `cls`): asks the
/// stream for bytes, suspends the connection while the stream has none (watching the socket
/// for a hang-up meanwhile), and resumes it when the stream wakes it. Its
/// ``StreamResponseMachine`` decides; this class makes the calls.
///
/// Lives on the event loop (libmicrohttpd's callbacks, the socket's watch and its writer all
/// run there), checked at every entry point, no lock. From elsewhere: ``wake()`` and
/// ``stopForShutdown()``, which hop to the loop.
final class StreamResponse: @unchecked Sendable {
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
    private var machine = StreamResponseMachine()
    /// The writer the stream was given, once it writes the body itself.
    private var writer: SocketBodyWriter?

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
        loop.preconditionInEventLoop()
        let canWriteDirectly = directAllowed && stream is any HTTPSocketBodyStream && connectionWatch != nil
        switch machine.read(canWriteDirectly: canWriteDirectly) {
        case .takeOverSocket:
            return startDirect()
        case .cut(let reason):
            logger.notice("stream ended", metadata: ["http.stream.end": .string(reason)])
            return usbhttpd_mhd_reader_end_with_error
        case .endAsWritten(let ending):
            return end(ending ?? .fail(reason: "its writer never ended it"))
        case .readStream:
            break
        }
        switch stream.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max)) {
        case .bytes(let count):
            return count
        case .wait:
            // Returning 0 without suspending makes libmicrohttpd ask again at once: only when woken meanwhile.
            guard machine.streamWaits() else { return 0 }
            MHD_suspend_connection(connection.pointer)
            watchForHangup()
            return 0
        case let ending:
            return end(ending)
        }
    }

    /// The body's last read: the last chunk (and trailers), or a cut connection.
    private func end(_ ending: HTTPStreamRead) -> Int {
        switch ending {
        case .end(let trailers):
            if let response {
                for field in trailers { _ = MHD_add_response_footer(response, field.name, field.value) }
            }
            return usbhttpd_mhd_reader_end_of_stream
        case .fail(let reason):
            logger.warning("stream ended early", metadata: ["http.stream.end": .string(reason)])
            return usbhttpd_mhd_reader_end_with_error
        case .bytes, .wait:
            preconditionFailure("not an ending")
        }
    }

    /// The stream has something (or has ended): resume the connection if it is suspended.
    /// From any thread (a stream's data comes on the loop in practice).
    func wake() {
        guard loop.inEventLoop else {
            loop.execute { [self] in wake() }
            return
        }
        if machine.woken() { resume() }
    }

    /// Ends the stream at the next read (the server is stopping); a directly written body
    /// ends after what is queued, as failed. From any thread.
    func stopForShutdown() {
        guard loop.inEventLoop else {
            loop.execute { [self] in stopForShutdown() }
            return
        }
        switch machine.stop() {
        case .endWriter: writer?.end(.fail(reason: "server stopping"))
        case .resume: resume()
        case .none: break
        }
    }

    private func resume() {
        resumer.resume(connection) { [connectionWatch] in connectionWatch?.stopWaiting() }
    }

    // MARK: Written by the stream itself

    /// Suspends the connection and hands a writer on its socket to the stream.
    private func startDirect() -> Int {
        guard let connectionWatch, let socketStream = stream as? any HTTPSocketBodyStream else {
            preconditionFailure("the machine takes over only a socket stream's watched connection")
        }
        let writer = SocketBodyWriter(
            connection: connectionWatch, framing: .chunked, loop: loop,
            onEnd: { [weak self] ending in self?.directEnded(ending) })
        self.writer = writer
        MHD_suspend_connection(connection.pointer)
        socketStream.attach(writer)
        return 0
    }

    /// The writer ended the body: resume the connection, whose next read ends it.
    private func directEnded(_ ending: HTTPStreamRead) {
        loop.preconditionInEventLoop()
        machine.directEnded(ending)
        resumer.resume(connection)
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
            guard let self else { return }
            if machine.clientHungUp() { resume() }
        }
    }
}
