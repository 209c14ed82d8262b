import Logging

/// Single transfers: control, bulk and interrupt reads and writes, each a ``PendingTransfer``
/// submitted from the actor and awaited without holding it.
extension DeviceSession {
    /// A control transfer on endpoint 0. For OUT, `data` is the data stage (`setup.length`
    /// must equal its count); for IN, up to `setup.length` bytes come back in the result.
    public func control(
        _ setup: ControlSetup, data: [UInt8] = [], timeout: UInt32, share: UsbfsShare? = nil, logger: Logger
    ) async throws
        -> TransferResult
    {
        try await ready()
        precondition(setup.direction == .in || Int(setup.length) == data.count, "wLength must match the OUT data")
        let pending = try PendingTransfer(
            io: io,
            spec: URBSpec(
                endpoint: setup.direction == .in ? 0x80 : 0x00, type: .control, length: 8 + Int(setup.length),
                timeout: timeout),
            loop: loop)
        let header = setup.bytes
        pending.buffer.copyBytes(from: header)
        if setup.direction == .out {
            UnsafeMutableRawBufferPointer(rebasing: pending.buffer[8...]).copyBytes(from: data)
        }
        // Endpoint 0 in turn with every other control request of the device (ControlQueue).
        let turn = try await awaitTurn(client: share?.client ?? "", timeout: timeout, pending: pending)
        defer { controlQueue.leave(turn.ticket) }
        var result = try await perform(pending, endpoint: 0x00, share: share, logger: logger)
        if turn.cut && result.status == .cancelled {
            logger.notice(
                "a control request held endpoint 0 past the limit while another client waited: cut",
                metadata: ["usb.device": "\(id)", "usb.request": "\(hex(setup.request))"])
            result = TransferResult(status: .timedOut, actualLength: result.actualLength, data: result.data)
        }
        guard setup.direction == .in else { return result }
        return TransferResult(
            status: result.status, actualLength: result.actualLength,
            data: pending.bytes(from: 8, count: result.actualLength))
    }

    /// Reads up to `length` bytes from bulk or interrupt IN endpoint `endpoint`. The URB asks
    /// for whole packets, so a device that sends a full packet to a shorter read does not
    /// overflow: what comes beyond `length` is kept for the next read of the endpoint, which
    /// gets it without a URB. So are the bytes of a read that timed out or was cancelled after
    /// some came. Kept bytes are `reader`'s (who read them: a client under a lease, say): a read
    /// by another reader drops them and asks the device anew, so bytes one holder left behind
    /// never reach the next.
    public func read(
        _ endpoint: UInt8, length: Int, timeout: UInt32, reader: String = "", share: UsbfsShare? = nil, logger: Logger
    ) async throws
        -> TransferResult
    {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .read)
        if let kept = leftovers.removeValue(forKey: endpoint) {
            if kept.reader == reader {
                let count = min(length, kept.bytes.count)
                if count < kept.bytes.count { leftovers[endpoint] = Kept(bytes: Array(kept.bytes[count...]), reader: reader) }
                return TransferResult(status: .completed, actualLength: count, data: Array(kept.bytes.prefix(count)))
            }
            logger.info(
                "bytes kept for another reader dropped",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "usb.bytes": "\(kept.bytes.count)"])
        }
        let packet = max(Int(descriptor.maxPacketSize & 0x07ff), 1)
        let pending = try PendingTransfer(
            io: io,
            spec: URBSpec(
                endpoint: endpoint, type: descriptor.transferType, length: (length + packet - 1) / packet * packet,
                timeout: timeout),
            loop: loop)
        let result = try await perform(pending, endpoint: endpoint, share: share, logger: logger)
        if result.status.keepsWhatCame, result.actualLength > 0 {
            // What came before the timeout (or the client's hang-up) is not lost: it waits for
            // the next read of the endpoint, as leftovers do.
            leftovers[endpoint] = Kept(bytes: pending.bytes(from: 0, count: result.actualLength), reader: reader)
            return TransferResult(status: result.status, actualLength: result.actualLength, data: [])
        }
        let count = min(result.actualLength, length)
        if result.actualLength > length {
            leftovers[endpoint] = Kept(bytes: pending.bytes(from: length, count: result.actualLength - length), reader: reader)
        }
        return TransferResult(status: result.status, actualLength: count, data: pending.bytes(from: 0, count: count))
    }

    /// Writes `data` to bulk or interrupt OUT endpoint `endpoint`, then a zero-length packet if
    /// `zeroLengthPacket` and the data fills its last packet (LIBUSB_TRANSFER_ADD_ZERO_PACKET).
    public func write(
        _ endpoint: UInt8, data: [UInt8], zeroLengthPacket: Bool, timeout: UInt32, share: UsbfsShare? = nil, logger: Logger
    ) async throws -> TransferResult
    {
        try await ready()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let pending = try PendingTransfer(
            io: io,
            spec: URBSpec(
                endpoint: endpoint, type: descriptor.transferType, length: data.count, timeout: timeout,
                flags: zeroLengthPacket ? .zeroPacket : []),
            loop: loop)
        pending.buffer.copyBytes(from: data)
        return try await perform(pending, endpoint: endpoint, share: share, logger: logger)
    }

    /// Submits `pending` and waits for its end; its buffer counts against `share` (the client's,
    /// within the daemon's usbfs share; the daemon's alone when nil) meanwhile (``UsbfsBudget``:
    /// refused before any URB when it does not fit).
    func perform(_ pending: PendingTransfer, endpoint: UInt8, share: UsbfsShare?, logger: Logger) async throws -> TransferResult {
        let bytes = pending.buffer.count
        let share = share ?? .unattributed(budget)
        try share.reserve(bytes)
        defer { share.release(bytes) }
        let key = ObjectIdentifier(pending)
        inFlight[key] = pending
        defer { inFlight[key] = nil }
        let type = pending.type
        switch await pending.run() {
        case .refused(let error):
            USBMetrics.refused(type: type, error: error)
            if error == .noDevice { goneFlag.store(true, ordering: .releasing) }
            logger.debug(
                "transfer refused",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        case .finished(let status, let actualLength):
            USBMetrics.transfers(type: type, endpoint: pending.endpoint, status: status, bytes: actualLength)
            if status == .noDevice { goneFlag.store(true, ordering: .releasing) }
            // Made only if the line is logged (a debug line for every transfer otherwise costs
            // four strings per control request).
            func metadata() -> Logger.Metadata {
                [
                    "usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))",
                    "usb.transfer.status": "\(status.rawValue)", "usb.transfer.length": "\(actualLength)",
                ]
            }
            if status == .cancelled {
                logger.notice("transfer cancelled", metadata: metadata())
            } else {
                logger.debug("transfer", metadata: metadata())
            }
            return TransferResult(status: status, actualLength: actualLength)
        }
    }
}
