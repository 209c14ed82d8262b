import CLibUSB
import Logging

/// Streams: many transfers in flight on one endpoint, all submitted from the device actor.
extension DeviceSession {
    /// Starts streaming from bulk, interrupt or (with `options.isoPacketSize`) isochronous IN
    /// endpoint `endpoint`: the stream's transfers
    /// are submitted now, and submitted again (from this actor's thread) as they are read.
    public func stream(_ endpoint: UInt8, options: BulkInStream.Options) throws -> BulkInStream {
        try ensurePresent()
        let type: libusb_transfer_type
        if let packetSize = options.isoPacketSize {
            let descriptor = try state.endpoint(endpoint, for: .isoRead)
            let packets = packetSize > 0 && options.transferSize % packetSize == 0 ? options.transferSize / packetSize : 0
            try DeviceState.checkIsoPackets(Array(repeating: packetSize, count: packets), for: descriptor)
            type = LIBUSB_TRANSFER_TYPE_ISOCHRONOUS
        } else {
            let descriptor = try state.endpoint(endpoint, for: .read)
            _ = try DeviceState.checkTransferSize(options.transferSize, for: descriptor)
            type = libusbType(descriptor)
        }
        leftovers[endpoint] = nil
        let stream = try BulkInStream(
            handle: handle, endpoint: endpoint, type: type, options: options,
            submitter: { [executor, self] body in
                // A closure on this actor's own thread, not a task: the cheapest way back in.
                // (The stream keeps the session alive; the session holds its streams weakly.)
                executor.run { self.assumeIsolated { _ in body() } }
            })
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
        stream.start()
        return stream
    }

    /// Writes everything `next` gives to bulk or interrupt OUT endpoint `endpoint`, cut into
    /// transfers of `transferSize` bytes with up to `transfers` of them in flight, submitted
    /// in order from this actor. A zero-length packet follows the last transfer if
    /// `zeroLengthPacket` and the data fills its last packet. Returns how it ended and the bytes
    /// the device took; stops at the first transfer that does not complete.
    public func writeStream(
        _ endpoint: UInt8, transfers: Int, transferSize: Int, zeroLengthPacket: Bool, timeout: UInt32, logger: Logger,
        next: () async throws -> [UInt8]?
    ) async throws -> (result: TransferResult, offered: Int) {
        try ensurePresent()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let packet = try DeviceState.checkTransferSize(transferSize, for: descriptor)
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: false)
        defer { USBMetrics.streamClosed(endpoint: endpoint) }
        var queue: [PendingTransfer] = []
        var chunk: [UInt8] = []
        var chunkOffset = 0
        var ended = false
        var lastLength = -1
        var sent = 0
        var offered = 0
        var failure: TransferStatus?

        func add(_ outcome: (count: Int, status: TransferStatus)) {
            sent += outcome.count
            if outcome.status != .completed && failure == nil { failure = outcome.status }
        }

        do {
            while failure == nil && !(ended && chunkOffset == chunk.count) {
                // Fill the next transfer's buffer straight from the body's pieces.
                let transfer = try PendingTransfer(
                    handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: transferSize,
                    timeout: timeout)
                var filled = 0
                while filled < transferSize {
                    if chunkOffset == chunk.count {
                        guard !ended, let piece = try await next() else {
                            ended = true
                            break
                        }
                        chunk = piece
                        chunkOffset = 0
                        offered += piece.count
                        continue
                    }
                    let count = min(transferSize - filled, chunk.count - chunkOffset)
                    chunk.withUnsafeBytes { bytes in
                        (transfer.buffer.baseAddress! + filled).copyMemory(
                            from: bytes.baseAddress! + chunkOffset, byteCount: count)
                    }
                    filled += count
                    chunkOffset += count
                }
                if filled == 0 { break }
                transfer.setLength(filled)
                lastLength = filled
                if queue.count == transfers { add(await settle(queue.removeFirst())) }
                if failure != nil { break }
                inFlight[ObjectIdentifier(transfer)] = transfer
                try transfer.submit()
                queue.append(transfer)
            }
            // A zero-length packet after data that fills its last packet, if asked for.
            let packetSize = max(packet, 1)
            if zeroLengthPacket && failure == nil && lastLength > 0 && lastLength % packetSize == 0 {
                let zlp = try PendingTransfer(
                    handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: 0, timeout: timeout)
                inFlight[ObjectIdentifier(zlp)] = zlp
                try zlp.submit()
                queue.append(zlp)
            }
        } catch {
            // The client went away (or a submission failed): nothing more goes out.
            for transfer in queue { transfer.cancel() }
            for transfer in queue { add(await settle(transfer)) }
            logger.notice(
                "stream to the device ended early",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        }
        if failure != nil { for transfer in queue { transfer.cancel() } }
        for transfer in queue { add(await settle(transfer)) }
        if failure == .noDevice { goneFlag.store(true, ordering: .releasing) }
        logger.debug(
            "stream to the device",
            metadata: [
                "usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "usb.stream.bytes": "\(sent)",
                "usb.transfer.status": "\((failure ?? .completed).rawValue)",
            ])
        return (TransferResult(status: failure ?? .completed, actualLength: sent), offered)
    }

    /// Waits for a transfer started with `submit()`: the bytes it moved and how it ended.
    func settle(_ transfer: PendingTransfer) async -> (count: Int, status: TransferStatus) {
        defer { inFlight[ObjectIdentifier(transfer)] = nil }
        let (type, endpoint) = (transfer.type, transfer.endpoint)
        switch await transfer.outcome() {
        case .finished(let status, let count):
            USBMetrics.transfers(type: type, endpoint: endpoint, outcome: status.rawValue, bytes: count)
            return (count, status)
        case .refused: return (0, .error)
        }
    }
}
