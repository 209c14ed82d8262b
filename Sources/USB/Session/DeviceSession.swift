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
    nonisolated let executor: ThreadExecutor
    nonisolated let goneFlag = Atomic<Bool>(false)
    public private(set) var state: DeviceState
    var inFlight: [ObjectIdentifier: PendingTransfer] = [:]
    /// Bytes a read received beyond the length asked for, by endpoint: the next read of that
    /// endpoint gets them first (WinUSB's "partial reads"). Dropped when the endpoint's state
    /// changes (clear halt, alternate setting, release, configuration, reset) or a stream starts.
    var leftovers: [UInt8: [UInt8]] = [:]
    /// Streams of this device, cancelled when the session closes.
    var streams: [ObjectIdentifier: WeakStream] = [:]

    struct WeakStream {
        weak var stream: BulkInStream?
    }

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    /// The device's thread as a task executor: a task that prefers it reaches this actor, and
    /// leaves it, without a thread switch (see ``ThreadExecutor``).
    public nonisolated var taskExecutor: any TaskExecutor { executor }

    /// The device was unplugged, came back as a new device after a reset, or the session was closed:
    /// every request answers LIBUSB_ERROR_NO_DEVICE.
    public nonisolated var isGone: Bool { goneFlag.load(ordering: .acquiring) }

    /// Marks the session gone at once (its device was unplugged): every later call fails with
    /// LIBUSB_ERROR_NO_DEVICE. ``close()`` still has to run.
    public nonisolated func deviceRemoved() { goneFlag.store(true, ordering: .releasing) }

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
        leftovers = [:]
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
        leftovers = [:]
        _ = try state.claim(number)
        defer { state.released(number) }
        try call { () throws(USBError) in try handle.releaseInterface(number) }
    }

    /// Selects alternate setting `altSetting` of claimed interface `interface` (libusb_set_interface_alt_setting).
    public func setAltSetting(interface: UInt8, altSetting: UInt8) throws {
        try ensurePresent()
        leftovers = [:]
        try state.checkAltSetting(interface: interface, altSetting: altSetting)
        try call { () throws(USBError) in try handle.setAltSetting(interface: interface, altSetting: altSetting) }
        state.altSettingSelected(interface: interface, altSetting: altSetting)
    }

    /// Activates configuration `value`, or unconfigures the device for nil (libusb_set_configuration).
    public func setConfiguration(_ value: UInt8?) throws {
        try ensurePresent()
        leftovers = [:]
        try state.checkConfiguration(value)
        try call { () throws(USBError) in try handle.setConfiguration(value) }
        state.configured(value)
    }

    /// Clears a halt (stall) on `endpoint` of a claimed interface (libusb_clear_halt).
    public func clearHalt(_ endpoint: UInt8) throws {
        try ensurePresent()
        leftovers = [:]
        _ = try state.endpoint(endpoint, for: .clearHalt)
        try call { () throws(USBError) in try handle.clearHalt(endpoint: endpoint) }
    }

    /// Resets the device's port (libusb_reset_device). Claims survive; alternate settings go
    /// back to 0. If the device comes back as another device the session is gone.
    public func reset() throws {
        try ensurePresent()
        leftovers = [:]
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

    /// Reads up to `length` bytes from bulk or interrupt IN endpoint `endpoint`. The URB asks
    /// for whole packets, so a device that sends a full packet to a shorter read does not
    /// overflow: what comes beyond `length` is kept for the next read of the endpoint, which
    /// gets it without a URB.
    public func read(_ endpoint: UInt8, length: Int, timeout: UInt32, logger: Logger) async throws -> TransferResult {
        try ensurePresent()
        let descriptor = try state.endpoint(endpoint, for: .read)
        if let kept = leftovers.removeValue(forKey: endpoint) {
            let count = min(length, kept.count)
            if count < kept.count { leftovers[endpoint] = Array(kept[count...]) }
            return TransferResult(status: .completed, actualLength: count, data: Array(kept.prefix(count)))
        }
        let packet = max(Int(descriptor.maxPacketSize & 0x07ff), 1)
        let pending = try PendingTransfer(
            handle: handle, endpoint: endpoint, type: libusbType(descriptor),
            length: (length + packet - 1) / packet * packet, timeout: timeout)
        let result = try await perform(pending, endpoint: endpoint, logger: logger)
        let count = min(result.actualLength, length)
        if result.actualLength > length {
            leftovers[endpoint] = pending.bytes(from: length, count: result.actualLength - length)
        }
        return TransferResult(status: result.status, actualLength: count, data: pending.bytes(from: 0, count: count))
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

    /// Cancels every transfer in flight, waits (up to 2 s) for them to end, releases every
    /// claim (attaching kernel drivers again) and marks the session gone.
    /// `deviceRemoved`: the device was unplugged; its streams end as failed (`no_device`),
    /// not as cancelled.
    public func close(deviceRemoved: Bool = false) async {
        goneFlag.store(true, ordering: .releasing)
        leftovers = [:]
        for weak in streams.values {
            if deviceRemoved { weak.stream?.deviceGone() } else { weak.stream?.cancel() }
        }
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

    func perform(_ pending: PendingTransfer, endpoint: UInt8, logger: Logger) async throws(USBError)
        -> TransferResult
    {
        let key = ObjectIdentifier(pending)
        inFlight[key] = pending
        defer { inFlight[key] = nil }
        let type = pending.type
        switch await pending.run() {
        case .refused(let error):
            USBMetrics.transfers(type: type, endpoint: pending.endpoint, outcome: error.name, bytes: 0)
            if error == .noDevice { goneFlag.store(true, ordering: .releasing) }
            logger.debug(
                "transfer refused",
                metadata: ["usb.device": "\(id)", "usb.endpoint": "\(hex(endpoint))", "error": "\(error)"])
            throw error
        case .finished(let status, let actualLength):
            USBMetrics.transfers(type: type, endpoint: pending.endpoint, outcome: status.rawValue, bytes: actualLength)
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

    func ensurePresent() throws(USBError) {
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

    func libusbType(_ endpoint: EndpointDescriptor) -> libusb_transfer_type {
        endpoint.transferType == .interrupt ? LIBUSB_TRANSFER_TYPE_INTERRUPT : LIBUSB_TRANSFER_TYPE_BULK
    }
}
