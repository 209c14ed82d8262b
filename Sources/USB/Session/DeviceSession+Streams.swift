import CLibUSB
import Logging

/// Streams: many transfers in flight on one endpoint, all submitted from the device actor.
extension DeviceSession {
    /// Starts streaming from bulk, interrupt or (with `options.isoPacketSize`) isochronous IN
    /// endpoint `endpoint`: the stream's transfers
    /// are submitted now, and submitted again (from this actor's thread) as they are read.
    public func stream(_ endpoint: UInt8, options: BulkInStream.Options) async throws -> BulkInStream {
        try await ready()
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
            loop: loop)
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
        stream.start()
        return stream
    }

    /// A stream of a request body to bulk or interrupt OUT endpoint `endpoint`, as the body
    /// arrives (``OutStream``): `transfers` transfers of `transferSize` bytes in flight, and a
    /// zero-length packet after data that fills its last packet if `zeroLengthPacket`.
    public func uploadStream(
        _ endpoint: UInt8, transfers: Int, transferSize: Int, zeroLengthPacket: Bool, timeout: UInt32, logger: Logger
    ) async throws -> OutStream {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let packet = try DeviceState.checkTransferSize(transferSize, for: descriptor)
        let stream = try OutStream(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor), transfers: transfers,
            transferSize: transferSize, packetSize: packet, zeroLengthPacket: zeroLengthPacket, timeout: timeout,
            loop: loop, logger: logger)
        streams = streams.filter { $0.value.stream != nil }
        streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
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
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let packet = try DeviceState.checkTransferSize(transferSize, for: descriptor)
        // `transfers` buffers, filled straight from the body's pieces and used again as their
        // transfers end: no allocation (and no page faults) per transfer, and from usbfs where
        // the kernel allows it, so the URBs' data is not copied again into the kernel.
        let buffers = TransferBuffers(handle: handle, count: transfers, size: transferSize)
        defer { buffers.free() }  // every path below has settled its transfers by then
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: buffers.zeroCopy)
        defer { USBMetrics.streamClosed(endpoint: endpoint) }
        var free = Array(buffers.pointers.indices.reversed())
        var queue: [(transfer: PendingTransfer, buffer: Int?)] = []
        var body = BodyPieces()
        var lastLength = -1
        var sent = 0
        var failure: TransferStatus?

        func add(_ outcome: (count: Int, status: TransferStatus)) {
            sent += outcome.count
            if outcome.status != .completed && failure == nil { failure = outcome.status }
        }

        do {
            while failure == nil && !body.ended {
                if free.isEmpty {
                    let first = queue.removeFirst()
                    add(await settle(first.transfer))
                    if let buffer = first.buffer { free.append(buffer) }
                    if failure != nil { break }
                }
                let index = free.removeLast()
                let buffer = buffers.pointers[index]
                let filled = try await body.fill(buffer, capacity: transferSize, next: next)
                guard filled > 0 else {
                    free.append(index)
                    break
                }
                let transfer = try PendingTransfer(
                    handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: filled, timeout: timeout,
                    buffer: UnsafeMutableRawBufferPointer(start: buffer, count: transferSize))
                lastLength = filled
                inFlight[ObjectIdentifier(transfer)] = transfer
                do {
                    try transfer.submit()
                } catch {
                    free.append(index)
                    throw error
                }
                queue.append((transfer, index))
            }
            // A zero-length packet after data that fills its last packet, if asked for.
            let packetSize = max(packet, 1)
            if zeroLengthPacket && failure == nil && lastLength > 0 && lastLength % packetSize == 0 {
                let zlp = try PendingTransfer(
                    handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: 0, timeout: timeout)
                inFlight[ObjectIdentifier(zlp)] = zlp
                try zlp.submit()
                queue.append((zlp, nil))
            }
        } catch {
            // The client went away (or a submission failed): nothing more goes out.
            for (transfer, _) in queue { transfer.cancel() }
            for (transfer, _) in queue { add(await settle(transfer)) }
            logger.notice(
                "stream to the device ended early",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        }
        if failure != nil { for (transfer, _) in queue { transfer.cancel() } }
        for (transfer, _) in queue { add(await settle(transfer)) }
        if failure == .noDevice { goneFlag.store(true, ordering: .releasing) }
        logger.debug(
            "stream to the device",
            metadata: [
                "usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "usb.stream.bytes": "\(sent)",
                "usb.transfer.status": "\((failure ?? .completed).rawValue)",
            ])
        return (TransferResult(status: failure ?? .completed, actualLength: sent), body.offered)
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
