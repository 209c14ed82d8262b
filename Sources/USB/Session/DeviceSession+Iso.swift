import CLibUSB
import Logging

/// Isochronous transfers: one URB of up to 128 packets, and a stream of them to an OUT endpoint.
/// (A stream from an IN endpoint is a ``BulkInStream`` with packets: ``stream(_:options:)``.)
extension DeviceSession {
    /// One isochronous transfer on `endpoint`: IN when `data` is nil (a packet of room for each
    /// of `packetLengths`), OUT otherwise (`data` cut into packets of `packetLengths`, whose sum
    /// is its count). Packets succeed or fail one by one; the result has each one's outcome.
    public func isoTransfer(
        _ endpoint: UInt8, packetLengths: [Int], data: [UInt8]?, timeout: UInt32, logger: Logger
    ) async throws -> IsoTransferResult {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: data == nil ? .isoRead : .isoWrite)
        try DeviceState.checkIsoPackets(packetLengths, for: descriptor)
        let pending = try PendingTransfer(handle: handle, endpoint: endpoint, isoPackets: packetLengths, timeout: timeout)
        if let data {
            precondition(data.count == packetLengths.reduce(0, +), "the packets must hold the data")
            pending.buffer.copyBytes(from: data)
        }
        let result = try await perform(pending, endpoint: endpoint, logger: logger)
        let packets = pending.isoResults()
        guard data == nil else { return IsoTransferResult(status: result.status, packets: packets) }
        let count = IsoLayout.pack(packets, in: pending.buffer.baseAddress!)
        return IsoTransferResult(status: result.status, packets: packets, data: pending.bytes(from: 0, count: count))
    }

    /// How a stream to an isochronous endpoint went.
    public struct IsoStreamSummary: Sendable, Equatable {
        /// The first transfer that failed as a whole, else `completed`.
        public var status: TransferStatus = .completed
        public var packets = 0
        public var failedPackets = 0
        /// Bytes the device took.
        public var actualLength = 0
        /// The first failed packets: their index in the stream and status (at most 16).
        public var failures: [(index: Int, status: TransferStatus)] = []

        public static func == (a: Self, b: Self) -> Bool {
            a.status == b.status && a.packets == b.packets && a.failedPackets == b.failedPackets
                && a.actualLength == b.actualLength && a.failures.map(\.index) == b.failures.map(\.index)
        }

        mutating func add(_ settled: (packets: [IsoPacketResult], status: TransferStatus)) {
            let (packets, transferStatus) = settled
            if transferStatus != .completed && status == .completed { status = transferStatus }
            for packet in packets {
                if packet.status != .completed {
                    failedPackets += 1
                    if failures.count < 16 { failures.append((self.packets, packet.status)) }
                }
                actualLength += packet.actualLength
                self.packets += 1
            }
        }
    }

    /// Writes everything `next` gives to isochronous OUT `endpoint`, cut into packets of
    /// `packetSize` bytes (the last one may be shorter), `packetsPerTransfer` to a URB, with up
    /// to `transfers` URBs in flight so that the device gets a packet every interval. A packet
    /// that fails does not stop the stream (isochronous data is never retried; the summary
    /// counts them); a transfer that fails as a whole (the device gone, say) does.
    public func isoWriteStream(
        _ endpoint: UInt8, packetSize: Int, packetsPerTransfer: Int, transfers: Int, timeout: UInt32, logger: Logger,
        next: () async throws -> [UInt8]?
    ) async throws -> (summary: IsoStreamSummary, offered: Int) {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .isoWrite)
        try DeviceState.checkIsoPackets(Array(repeating: packetSize, count: packetsPerTransfer), for: descriptor)
        let transferSize = packetSize * packetsPerTransfer
        // Its URBs' buffers count against the daemon's usbfs share while it runs.
        try budget.reserve(transfers * transferSize)
        defer { budget.release(transfers * transferSize) }
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: false)
        defer { USBMetrics.streamClosed(endpoint: endpoint) }
        var queue: [PendingTransfer] = []
        var body = BodyPieces()
        var summary = IsoStreamSummary()

        do {
            while summary.status == .completed && !body.ended {
                let transfer = try PendingTransfer(
                    handle: handle, endpoint: endpoint, isoPackets: Array(repeating: packetSize, count: packetsPerTransfer),
                    timeout: timeout)
                // The next transfer's bytes, straight from the body's pieces into its buffer.
                let filled = try await body.fill(
                    transfer.buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), capacity: transferSize, next: next)
                if filled == 0 { break }
                if filled < transferSize {
                    // The last transfer: fewer packets, the last one perhaps shorter.
                    var lengths = Array(repeating: packetSize, count: filled / packetSize)
                    if filled % packetSize != 0 { lengths.append(filled % packetSize) }
                    transfer.setIsoPackets(lengths)
                }
                if queue.count == transfers { summary.add(await settleIso(queue.removeFirst())) }
                if summary.status != .completed { break }
                inFlight[ObjectIdentifier(transfer)] = transfer
                try transfer.submit()
                queue.append(transfer)
            }
        } catch {
            // The client went away (or a submission failed): nothing more goes out.
            for transfer in queue { transfer.cancel() }
            while !queue.isEmpty { summary.add(await settleIso(queue.removeFirst())) }
            logger.notice(
                "isochronous stream to the device ended early",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        }
        if summary.status != .completed { for transfer in queue { transfer.cancel() } }
        while !queue.isEmpty { summary.add(await settleIso(queue.removeFirst())) }
        if summary.status == .noDevice { goneFlag.store(true, ordering: .releasing) }
        logger.debug(
            "isochronous stream to the device",
            metadata: [
                "usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "usb.stream.bytes": "\(summary.actualLength)",
                "usb.iso.packets": "\(summary.packets)", "usb.iso.failed_packets": "\(summary.failedPackets)",
                "usb.transfer.status": "\(summary.status.rawValue)",
            ])
        return (summary, body.offered)
    }

    /// Waits for an isochronous transfer started with `submit()`: its packets and how it ended.
    func settleIso(_ transfer: PendingTransfer) async -> (packets: [IsoPacketResult], status: TransferStatus) {
        let (_, status) = await settle(transfer)
        return (transfer.isoResults(), status)
    }
}
