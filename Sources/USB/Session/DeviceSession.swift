import CLibUSB
import EventLoop
import Threads
import Logging
import Synchronization

/// One open device and everything the daemon does with it. The actor runs on the event loop
/// (``EventLoop``), where libusb's completions and the server's requests run too: a transfer
/// is submitted, completed and answered without a thread switch, and URBs for the device are
/// submitted one after another, in the order requests arrive. Blocking libusb calls (claim,
/// SET_INTERFACE, SET_CONFIGURATION, clear halt, reset, release) run on the device's own
/// worker thread instead, never on the loop; while one runs, the actor's other work waits
/// (``waitWhileBlocked()``), as it would if the call ran on the actor's own thread. Awaiting a
/// transfer does not hold the actor: other requests on the device go ahead meanwhile.
public actor DeviceSession {
    /// The device's id ("1-2.3") at the time it was opened.
    public nonisolated let id: String
    public nonisolated let handle: USBDeviceHandle
    nonisolated let loop: EventLoop
    /// Where blocking libusb calls run.
    nonisolated let worker: ThreadExecutor
    nonisolated let goneFlag = Atomic<Bool>(false)
    public private(set) var state: DeviceState
    var inFlight: [ObjectIdentifier: PendingTransfer] = [:]
    /// Bytes a read received beyond the length asked for, by endpoint: the next read of that
    /// endpoint gets them first (WinUSB's "partial reads"). Dropped when the endpoint's state
    /// changes (clear halt, alternate setting, release, configuration, reset) or a stream starts.
    var leftovers: [UInt8: [UInt8]] = [:]
    /// Streams of this device, cancelled when the session closes.
    var streams: [ObjectIdentifier: WeakStream] = [:]
    /// A blocking call runs on the worker; who waits for it to end.
    private var blockingCall = false
    private var waitingForBlockingCall: [CheckedContinuation<Void, Never>] = []

    struct WeakStream {
        weak var stream: (any SessionStream)?
    }

    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// The device was unplugged, came back as a new device after a reset, or the session was closed:
    /// every request answers LIBUSB_ERROR_NO_DEVICE.
    public nonisolated var isGone: Bool { goneFlag.load(ordering: .acquiring) }

    /// Marks the session gone at once (its device was unplugged): every later call fails with
    /// LIBUSB_ERROR_NO_DEVICE. ``close()`` still has to run.
    public nonisolated func deviceRemoved() { goneFlag.store(true, ordering: .releasing) }

    /// Takes over `handle`, on `loop`. Kernel drivers are detached from interfaces on claim and
    /// attached again on release.
    public init(
        handle: USBDeviceHandle, id: String, configurations: [ConfigurationDescriptor], activeConfiguration: UInt8?,
        loop: EventLoop
    ) {
        self.id = id
        self.handle = handle
        self.loop = loop
        self.worker = ThreadExecutor(name: "usb-\(id)")
        self.state = DeviceState(configurations: configurations, activeConfiguration: activeConfiguration)
        // LIBUSB_ERROR_NOT_SUPPORTED where there are no kernel drivers to detach: nothing to do then.
        try? handle.setAutoDetachKernelDriver(true)
    }

    deinit { worker.stop() }

    // MARK: Interfaces and configurations

    /// Claims interface `number` (libusb_claim_interface), detaching its kernel driver if one is bound.
    public func claim(_ number: UInt8) async throws -> DeviceState.Claim {
        try await ready()
        leftovers = [:]
        try state.checkClaim(number)
        let (handle, id, configuration) = (handle, id, state.activeConfiguration)
        let (detached, altSetting) = try await blocking { () throws(USBError) -> (Bool, UInt8?) in
            let detached = (try? handle.kernelDriverActive(interface: number)) ?? false
            try handle.claimInterface(number)
            let altSetting = configuration.flatMap { Sysfs.altSetting(device: id, configuration: $0, interface: number) }
            return (detached, altSetting)
        }
        let claim = DeviceState.Claim(interface: number, altSetting: altSetting ?? 0, kernelDriverDetached: detached)
        state.claimed(claim)
        return claim
    }

    /// Releases interface `number` (libusb_release_interface); its kernel driver, if one was
    /// detached, is attached again.
    public func release(_ number: UInt8) async throws {
        try await ready()
        leftovers = [:]
        _ = try state.claim(number)
        defer { state.released(number) }
        let handle = handle
        try await blocking { () throws(USBError) in try handle.releaseInterface(number) }
    }

    /// Selects alternate setting `altSetting` of claimed interface `interface` (libusb_set_interface_alt_setting).
    public func setAltSetting(interface: UInt8, altSetting: UInt8) async throws {
        try await ready()
        leftovers = [:]
        try state.checkAltSetting(interface: interface, altSetting: altSetting)
        let handle = handle
        try await blocking { () throws(USBError) in try handle.setAltSetting(interface: interface, altSetting: altSetting) }
        state.altSettingSelected(interface: interface, altSetting: altSetting)
    }

    /// Activates configuration `value`, or unconfigures the device for nil (libusb_set_configuration).
    public func setConfiguration(_ value: UInt8?) async throws {
        try await ready()
        leftovers = [:]
        try state.checkConfiguration(value)
        let handle = handle
        try await blocking { () throws(USBError) in try handle.setConfiguration(value) }
        state.configured(value)
    }

    /// Clears a halt (stall) on `endpoint` of a claimed interface (libusb_clear_halt).
    public func clearHalt(_ endpoint: UInt8) async throws {
        try await ready()
        leftovers = [:]
        _ = try state.endpoint(endpoint, for: .clearHalt)
        let handle = handle
        try await blocking { () throws(USBError) in try handle.clearHalt(endpoint: endpoint) }
    }

    /// Resets the device's port (libusb_reset_device). Claims survive; alternate settings go
    /// back to 0. If the device comes back as another device the session is gone.
    public func reset() async throws {
        try await ready()
        leftovers = [:]
        let handle = handle
        do {
            try await blocking { () throws(USBError) in try handle.reset() }
        } catch {
            if error == .notFound { goneFlag.store(true, ordering: .releasing) }
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
        try await ready()
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
        try await ready()
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
        try await ready()
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
        let handle = handle
        let claimed = state.claims.keys.sorted()
        _ = try? await blocking { () throws(USBError) in
            for number in claimed { try? handle.releaseInterface(number) }
        }
        for number in claimed { state.released(number) }
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

    /// Waits until no blocking call runs, then checks that the device is still there: the
    /// first step of every request. (No suspension when nothing blocks, the usual case.)
    func ready() async throws(USBError) {
        await waitWhileBlocked()
        try ensurePresent()
    }

    /// Returns once no blocking call runs on the worker.
    func waitWhileBlocked() async {
        while blockingCall {
            await withCheckedContinuation { waitingForBlockingCall.append($0) }
        }
    }

    /// Runs a blocking libusb call on the device's worker thread and waits for it, holding the
    /// actor's other work back meanwhile (``waitWhileBlocked()``); LIBUSB_ERROR_NO_DEVICE marks
    /// the session gone.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(USBError) -> T) async throws(USBError) -> T {
        await waitWhileBlocked()
        blockingCall = true
        let result: Result<T, USBError> = await withCheckedContinuation { continuation in
            worker.run { continuation.resume(returning: Result { () throws(USBError) -> T in try body() }) }
        }
        blockingCall = false
        let waiting = waitingForBlockingCall
        waitingForBlockingCall = []
        for continuation in waiting { continuation.resume() }
        if case .failure(let error) = result, error == .noDevice { goneFlag.store(true, ordering: .releasing) }
        return try result.get()
    }

    func libusbType(_ endpoint: EndpointDescriptor) -> libusb_transfer_type {
        endpoint.transferType == .interrupt ? LIBUSB_TRANSFER_TYPE_INTERRUPT : LIBUSB_TRANSFER_TYPE_BULK
    }
}

/// A stream of a session's (to or from an endpoint), which the session ends when it closes.
protocol SessionStream: AnyObject, Sendable {
    /// Ends the stream: the session closes.
    func cancel()
    /// Ends the stream: the device was unplugged.
    func deviceGone()
}

extension BulkInStream: SessionStream {}

extension OutStream: SessionStream {
    func deviceGone() { cancel() }
}
