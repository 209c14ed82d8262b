import HTTPServer
import Logging
import USB

/// A ``BulkInStream`` as an HTTP body: its endings become a proper last chunk (clean, with
/// a trailer if the client asked for trailers) or a cut connection (failed), and an optional
/// duration ends it cleanly.
final class EndpointStream: HTTPBodyStream, @unchecked Sendable {
    let stream: BulkInStream
    let duration: Duration?
    /// The request said `TE: trailers`. (Some clients, URLSession on Linux among them, fail
    /// on trailers they did not ask for.)
    let trailers: Bool
    let logger: Logger
    /// This stream's place among the open ones, given back on close.
    let slot: StreamSlots.Slot
    private var timer: Task<Void, Never>?

    init(_ stream: BulkInStream, duration: Duration?, trailers: Bool, logger: Logger, slot: StreamSlots.Slot) {
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

    func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTPStreamRead {
        switch stream.read(into: buffer) {
        case .bytes(let count): return .bytes(count)
        case .wait: return .wait
        case .end(let ending):
            let bytes = stream.statistics.bytes
            guard ending.isClean else {
                return .fail(reason: "\(ending.name) after \(bytes) bytes from endpoint \(hex(stream.endpoint))")
            }
            guard trailers else { return .end(trailers: [:]) }
            var fields: HTTPHeaders = ["X-USB-Stream-End": ending.name, "X-USB-Stream-Bytes": String(bytes)]
            if stream.options.isoPacketSize != nil { fields.add("X-USB-Iso-Failed-Packets", String(stream.isoFailedPackets)) }
            return .end(trailers: fields)
        }
    }

    func close() {
        timer?.cancel()
        stream.cancel()
        slot.release()
        let statistics = stream.statistics
        var metadata: Logger.Metadata = [
            "usb.endpoint": "\(hex(stream.endpoint))", "usb.stream.bytes": "\(statistics.bytes)",
            "usb.stream.transfers": "\(statistics.chunks)",
            "usb.stream.submit_hop_us": "\((statistics.meanSubmitHopMicroseconds * 10).rounded() / 10)",
        ]
        if stream.options.isoPacketSize != nil { metadata["usb.iso.failed_packets"] = "\(stream.isoFailedPackets)" }
        logger.info("stream closed", metadata: metadata)
    }
}
