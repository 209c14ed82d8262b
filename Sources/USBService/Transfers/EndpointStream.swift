import HTTPServer
import Logging
import USB

/// A ``BulkInStream`` as an HTTP body: its endings become a proper last chunk (clean, with
/// a trailer if the client asked for trailers) or a cut connection (failed), and an optional
/// duration ends it cleanly. On plain HTTP/1.1 the server lets it write to the client's socket
/// itself (``attach(_:)``): each usbfs buffer goes out with sendmsg and back to the bus as soon
/// as the kernel has it. Otherwise (TLS) the server reads it, a copy per chunk.
final class EndpointStream: HTTPSocketBodyStream, @unchecked Sendable {
    let stream: BulkInStream
    let duration: Duration?
    /// The request said `TE: trailers`. (Some clients, URLSession on Linux among them, fail
    /// on trailers they did not ask for.)
    let trailers: Bool
    let logger: BoundLogger
    /// This stream's place among the open ones, given back on close.
    let slot: StreamSlots.Slot
    private var timer: Task<Void, Never>?

    init(_ stream: BulkInStream, duration: Duration?, trailers: Bool, logger: BoundLogger, slot: StreamSlots.Slot) {
        self.stream = stream
        self.duration = duration
        self.trailers = trailers
        self.logger = logger
        self.slot = slot
    }

    func start(wake: @escaping @Sendable () -> Void) {
        stream.onWake(wake)
        if let duration {
            timer = Task { [stream] in
                try? await Task.sleep(for: duration)
                if !Task.isCancelled { stream.finish() }
            }
        }
    }

    func attach(_ writer: SocketBodyWriter) {
        let link = SocketLink(stream: stream, writer: writer, ending: { [self] in httpEnding($0) })
        writer.feed(from: link)
        stream.attach(link)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTPStreamRead {
        switch stream.read(into: buffer) {
        case .bytes(let count): return .bytes(count)
        case .wait: return .wait
        case .end(let ending): return httpEnding(ending)
        }
    }

    /// How the body ends for `ending`: cleanly (with trailers if asked for), or cut.
    private func httpEnding(_ ending: BulkInStream.Ending) -> HTTPStreamRead {
        let bytes = stream.statistics.bytes
        guard ending.isClean else {
            return .fail(reason: "\(ending.name) after \(bytes) bytes from endpoint \(hex(stream.endpoint))")
        }
        guard trailers else { return .end(trailers: [:]) }
        var fields: HTTPHeaders = ["X-USB-Stream-End": ending.name, "X-USB-Stream-Bytes": String(bytes)]
        if stream.options.isoPacketSize != nil { fields.add("X-USB-Iso-Failed-Packets", String(stream.isoFailedPackets)) }
        return .end(trailers: fields)
    }

    func close() {
        timer?.cancel()
        stream.cancel()
        slot.release()
        let statistics = stream.statistics
        var metadata: Logger.Metadata = [
            "usb.endpoint": "\(hex(stream.endpoint))", "usb.stream.bytes": "\(statistics.bytes)",
            "usb.stream.transfers": "\(statistics.chunks)",
            "usb.stream.turnaround_us": "\((statistics.meanTurnaroundMicroseconds * 10).rounded() / 10)",
        ]
        if stream.options.isoPacketSize != nil { metadata["usb.iso.failed_packets"] = "\(stream.isoFailedPackets)" }
        logger.info("stream closed", metadata: metadata)
    }
}

/// Joins a stream's buffers to the socket's writer, both ways, on the event loop: buffers to
/// send, buffers sent (back to the bus), the end, a client gone.
private final class SocketLink: InStreamSink, SocketBodySource, @unchecked Sendable {
    let stream: BulkInStream
    let writer: SocketBodyWriter
    let ending: (BulkInStream.Ending) -> HTTPStreamRead

    init(stream: BulkInStream, writer: SocketBodyWriter, ending: @escaping (BulkInStream.Ending) -> HTTPStreamRead) {
        self.stream = stream
        self.writer = writer
        self.ending = ending
    }

    func send(_ bytes: UnsafeRawPointer, count: Int, tag: Int) { writer.send(bytes, count: count, tag: tag) }
    func end(_ ending: BulkInStream.Ending) { writer.end(self.ending(ending)) }
    func sent(_ tag: Int) { stream.sent(tag) }
    func clientGone() { stream.cancel() }
}
