import CLibUSB
import Threads
import Logging
import Synchronization

/// One open device and everything the daemon does with it. Runs on a thread of its own:
/// blocking libusb calls (claim, SET_INTERFACE, clear halt, reset) never touch Swift's
/// cooperative pool, and URBs for the device are submitted here, one after another, in
/// the order requests arrive. Awaiting a transfer does not block the actor: other requests
/// on the same device go ahead meanwhile.
public actor DeviceSession {
    /// The device's id ("1-2.3") at the time it was opened.
    public nonisolated let id: String
    public nonisolated let handle: USBDeviceHandle
    private nonisolated let executor: ThreadExecutor
    private nonisolated let goneFlag = Atomic<Bool>(false)
    public private(set) var state: DeviceState
    private var inFlight: [ObjectIdentifier: PendingTransfer] = [:]
    /// Streams of this device, cancelled when the session closes.
    private var streams: [ObjectIdentifier: WeakStream] = [:]

    private struct WeakStream {
        weak var stream: BulkInStream?
    }

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The device was unplugged, came back as a new device after a reset, or the session was closed:
    /// every request answers LIBUSB_ERROR_NO_DEVICE.
    public nonisolated var isGone: Bool { goneFlag.load(ordering: .acquiring) }

    /// Takes over `handle`. Kernel drivers are detached from interfaces on claim and attached
    /// again on release.
    public init(handle: USBDeviceHandle, id: String, configurations: [ConfigurationDescriptor], activeConfiguration: UInt8?) {
        self.id = id
        self.handle = handle
        self.executor = ThreadExecutor(name: "usb-\(id)")
        self.state = DeviceState(configurations: configurations, activeConfiguration: activeConfiguration)
        // LIBUSB_ERROR_NOT_SUPPORTED where there are no kernel drivers to detach: nothing to do then.
        try? handle.setAutoDetachKernelDriver(true)
    }

    deinit { executor.stop() }

    // MARK: Interfaces and configurations

    /// Claims interface `number` (libusb_claim_interface), detaching its kernel driver if one is bound.
    public func claim(_ number: UInt8) throws -> DeviceState.Claim {
        try ensurePresent()
        try state.checkClaim(number)
        let detached = (try? handle.kernelDriverActive(interface: number)) ?? false
        try call { () throws(USBError) in try handle.claimInterface(number) }
        let altSetting = state.activeConfiguration.flatMap {
            Sysfs.altSetting(device: id, configuration: $0, interface: number)
        }
        let claim = DeviceState.Claim(interface: number, altSetting: altSetting ?? 0, kernelDriverDetached: detached)
        state.claimed(claim)
        return claim
    }

    /// Releases interface `number` (libusb_release_interface); its kernel driver, if one was
    /// detached, is attached again.
    public func release(_ number: UInt8) throws {
        try ensurePresent()
        _ = try state.claim(number)
        defer { state.released(number) }
        try call { () throws(USBError) in try handle.releaseInterface(number) }
    }

    /// Selects alternate setting `altSetting` of claimed interface `interface` (libusb_set_interface_alt_setting).
    public func setAltSetting(interface: UInt8, altSetting: UInt8) throws {
        try ensurePresent()
        try state.checkAltSetting(interface: interface, altSetting: altSetting)
        try call { () throws(USBError) in try handle.setAltSetting(interface: interface, altSetting: altSetting) }
        state.altSettingSelected(interface: interface, altSetting: altSetting)
    }

    /// Activates configuration `value`, or unconfigures the device for nil (libusb_set_configuration).
    public func setConfiguration(_ value: UInt8?) throws {
        try ensurePresent()
        try state.checkConfiguration(value)
        try call { () throws(USBError) in try handle.setConfiguration(value) }
        state.configured(value)
    }

    /// Clears a halt (stall) on `endpoint` of a claimed interface (libusb_clear_halt).
    public func clearHalt(_ endpoint: UInt8) throws {
        try ensurePresent()
        _ = try state.endpoint(endpoint, for: .clearHalt)
        try call { () throws(USBError) in try handle.clearHalt(endpoint: endpoint) }
    }

    /// Resets the device's port (libusb_reset_device). Claims survive; alternate settings go
    /// back to 0. If the device comes back as another device the session is gone.
    public func reset() throws {
        try ensurePresent()
        do {
            try handle.reset()
        } catch {
            if error == .notFound || error == .noDevice { goneFlag.store(true, ordering: .releasing) }
            throw error
        }
        state.wasReset()
    }

    // MARK: Transfers

    /// A control transfer on endpoint 0. For OUT, `data` is the data stage (`setup.length`
    /// must equal its count); for IN, up to `setup.length` bytes come back in the result.
    public func control(_ setup: ControlSetup, data: [UInt8] = [], timeout: UInt32, logger: Logger) async throws(USBError)
        -> TransferResult
    {
        try ensurePresent()
        precondition(setup.direction == .in || Int(setup.length) == data.count, "wLength must match the OUT data")
        let pending = try PendingTransfer(
            handle: handle, endpoint: setup.direction == .in ? 0x80 : 0x00, type: LIBUSB_TRANSFER_TYPE_CONTROL,
            length: 8 + Int(setup.length), timeout: timeout)
        let header = setup.bytes
        pending.buffer.copyBytes(from: header)
        if setup.direction == .out {
            UnsafeMutableRawBufferPointer(rebasing: pending.buffer[8...]).copyBytes(from: data)
        }
        let result = try await perform(pending, endpoint: 0x00, logger: logger)
        guard setup.direction == .in else { return result }
        return TransferResult(
            status: result.status, actualLength: result.actualLength,
            data: pending.bytes(from: 8, count: result.actualLength))
    }

    /// Reads up to `length` bytes from bulk or interrupt IN endpoint `endpoint`.
    public func read(_ endpoint: UInt8, length: Int, timeout: UInt32, logger: Logger) async throws -> TransferResult {
        try ensurePresent()
        let descriptor = try state.endpoint(endpoint, for: .read)
        let pending = try PendingTransfer(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: length, timeout: timeout)
        let result = try await perform(pending, endpoint: endpoint, logger: logger)
        return TransferResult(
            status: result.status, actualLength: result.actualLength,
            data: pending.bytes(from: 0, count: result.actualLength))
    }

    /// Writes `data` to bulk or interrupt OUT endpoint `endpoint`, then a zero-length packet if
    /// `zeroLengthPacket` and the data fills its last packet (LIBUSB_TRANSFER_ADD_ZERO_PACKET).
    public func write(_ endpoint: UInt8, data: [UInt8], zeroLengthPacket: Bool, timeout: UInt32, logger: Logger)
        async throws -> TransferResult
    {
        try ensurePresent()
        let descriptor = try state.endpoint(endpoint, for: .write)
        let pending = try PendingTransfer(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor), length: data.count, timeout: timeout,
            flags: zeroLengthPacket ? LIBUSB_TRANSFER_ADD_ZERO_PACKET : nil)
        pending.buffer.copyBytes(from: data)
        return try await perform(pending, endpoint: endpoint, logger: logger)
    }

    /// Starts streaming from bulk or interrupt IN endpoint `endpoint`: the stream's transfers
    /// are submitted now, and submitted again (from this actor's thread) as they are read.
    public func stream(_ endpoint: UInt8, options: BulkInStream.Options) throws -> BulkInStream {
        try ensurePresent()
        let descriptor = try state.endpoint(endpoint, for: .read)
        let packet = Int(descriptor.maxPacketSize & 0x7ff)
        if packet > 0 && options.transferSize % packet != 0 {
            throw DeviceStateError.transferSizeNotPacketMultiple(size: options.transferSize, maxPacketSize: packet)
        }
        let stream = try BulkInStream(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor), options: options,
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
        let packet = Int(descriptor.maxPacketSize & 0x7ff)
        if packet > 0 && transferSize % packet != 0 {
            throw DeviceStateError.transferSizeNotPacketMultiple(size: transferSize, maxPacketSize: packet)
        }
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
    private func settle(_ transfer: PendingTransfer) async -> (count: Int, status: TransferStatus) {
        defer { inFlight[ObjectIdentifier(transfer)] = nil }
        switch await transfer.outcome() {
        case .finished(let status, let count): return (count, status)
        case .refused: return (0, .error)
        }
    }

    /// Cancels every transfer in flight, waits (up to 2 s) for them to end, releases every
    /// claim (attaching kernel drivers again) and marks the session gone.
    public func close() async {
        goneFlag.store(true, ordering: .releasing)
        for weak in streams.values { weak.stream?.cancel() }
        for pending in inFlight.values { pending.cancel() }
        let deadline = ContinuousClock.now + .seconds(2)
        while !inFlight.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        for number in state.claims.keys.sorted() {
            try? handle.releaseInterface(number)
            state.released(number)
        }
    }

    /// Transfers in flight now.
    public var transfersInFlight: Int { inFlight.count }

    // MARK: Helpers

    private func perform(_ pending: PendingTransfer, endpoint: UInt8, logger: Logger) async throws(USBError)
        -> TransferResult
    {
        let key = ObjectIdentifier(pending)
        inFlight[key] = pending
        defer { inFlight[key] = nil }
        switch await pending.run() {
        case .refused(let error):
            if error == .noDevice { goneFlag.store(true, ordering: .releasing) }
            logger.debug(
                "transfer refused",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        case .finished(let status, let actualLength):
            if status == .noDevice { goneFlag.store(true, ordering: .releasing) }
            let metadata: Logger.Metadata = [
                "usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "usb.transfer.status": "\(status.rawValue)",
                "usb.transfer.length": "\(actualLength)",
            ]
            if status == .cancelled {
                logger.notice("transfer cancelled", metadata: metadata)
            } else {
                logger.debug("transfer", metadata: metadata)
            }
            return TransferResult(status: status, actualLength: actualLength)
        }
    }

    private func ensurePresent() throws(USBError) {
        if isGone { throw .noDevice }
    }

    /// A blocking libusb call; LIBUSB_ERROR_NO_DEVICE marks the session gone.
    private func call(_ body: () throws(USBError) -> Void) throws(USBError) {
        do {
            try body()
        } catch {
            if error == .noDevice { goneFlag.store(true, ordering: .releasing) }
            throw error
        }
    }

    private func libusbType(_ endpoint: EndpointDescriptor) -> libusb_transfer_type {
        endpoint.transferType == .interrupt ? LIBUSB_TRANSFER_TYPE_INTERRUPT : LIBUSB_TRANSFER_TYPE_BULK
    }
}
