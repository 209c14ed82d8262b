import EventLoop
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
    /// The address the device had on its bus when it was opened: it changes each time the
    /// device enumerates, so with the bus it names this instance of the device.
    public nonisolated let address: UInt8
    /// The device as it was listed when the session opened (vendor, serial, port: what policy
    /// rules name); nil when the opener had none.
    public nonisolated var info: USBDeviceInfo? { infoBox.withLock { $0 } }
    /// Its control requests, REST's and the URB channels', one on endpoint 0 at a time.
    public nonisolated let controlQueue: ControlQueue
    /// The device as listed; what the host learns later (its security keys, once the HID
    /// driver has read their report descriptors) is added (``learned(securityKeys:)``).
    private nonisolated let infoBox: Mutex<USBDeviceInfo?>
    /// What the session does to the device with: libusb (``USBDeviceHandle``), or a fake in tests.
    public nonisolated let io: any DeviceIO
    public nonisolated let loop: EventLoop
    /// Where blocking libusb calls run.
    nonisolated let worker: EventLoop
    /// The daemon's share of usbfs memory, which every URB and stream buffer counts against.
    public nonisolated let budget: UsbfsBudget
    nonisolated let goneFlag = Atomic<Bool>(false)
    public internal(set) var state: DeviceState
    var inFlight: [ObjectIdentifier: PendingTransfer] = [:]
    /// Bytes a read received beyond the length asked for, by endpoint: the next read of that
    /// endpoint by the same reader gets them first (WinUSB's "partial reads"). Dropped when the
    /// endpoint's state changes (clear halt, alternate setting, release, configuration, reset),
    /// a stream starts, or another reader reads the endpoint: they belong to whoever read
    /// them (its client and lease), never handed to the next holder.
    var leftovers: [UInt8: Kept] = [:]

    /// Bytes kept for the reader that read them.
    struct Kept {
        var bytes: [UInt8]
        var reader: String
    }
    /// Told this session's id each time an interface is claimed or released (``USBHost``
    /// passes its watchers: the event stream's `activity`).
    nonisolated let claimsChanged: (@Sendable (String) -> Void)?
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

    /// Takes over `io` (an open device), on `loop`. Kernel drivers are detached from interfaces
    /// on claim and attached again on release.
    public init(
        io: any DeviceIO, id: String, address: UInt8, configurations: [ConfigurationDescriptor],
        activeConfiguration: UInt8?, loop: EventLoop, budget: UsbfsBudget = .unlimited, info: USBDeviceInfo? = nil,
        controlHoldLimit: Int = 5000, claimsChanged: (@Sendable (String) -> Void)? = nil
    ) throws(USBError) {
        self.id = id
        self.claimsChanged = claimsChanged
        self.controlQueue = ControlQueue(loop: loop, holdLimit: controlHoldLimit)
        self.infoBox = Mutex(info)
        self.address = address
        self.io = io
        self.loop = loop
        self.budget = budget
        do {
            // An event loop that waits for nothing but its queue (the daemon's one kind of thread).
            self.worker = try EventLoop(name: "usb-\(id)", logger: Logger(label: "usbhttpd.usb"))
        } catch {
            throw USBError(errno: error.rawValue)
        }
        self.state = DeviceState(configurations: configurations, activeConfiguration: activeConfiguration)
        // LIBUSB_ERROR_NOT_SUPPORTED where there are no kernel drivers to detach: nothing to do then.
        try? io.setAutoDetachKernelDriver(true)
    }

    /// Interfaces the host found to be security keys after the session opened, and whether
    /// every HID interface has been read now.
    public nonisolated func learned(securityKeys: Set<UInt8>, allRead: Bool) {
        infoBox.withLock { info in
            guard var known = info else { return }
            known.securityKeyInterfaces.formUnion(securityKeys)
            known.securityKeysRead = known.securityKeysRead || allRead
            info = known
        }
    }

    /// The device as known, its security keys read from sysfs first if some HID interface was
    /// not read yet (its HID driver bound after the last scan): what an access check needs.
    public nonisolated func infoWithSecurityKeys(sysfsRoot: String = "/sys/bus/usb/devices") -> USBDeviceInfo? {
        guard let known = info, !known.securityKeysRead else { return info }
        let (keys, complete) = Sysfs.securityKeyInterfaces(device: id, root: sysfsRoot)
        learned(securityKeys: keys, allRead: complete)
        return info
    }

    deinit { worker.stop(waitingForThread: false) }

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
        let io = io
        let claimed = state.claims.keys.sorted()
        _ = try? await blocking { () throws(USBError) in
            for number in claimed { try? io.releaseInterface(number) }
        }
        for number in claimed { state.released(number) }
        if !claimed.isEmpty { claimsChanged?(id) }
    }

    /// Transfers in flight now.
    public var transfersInFlight: Int { inFlight.count }

    // MARK: Helpers

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
            worker.execute { continuation.resume(returning: Result { () throws(USBError) -> T in try body() }) }
        }
        blockingCall = false
        let waiting = waitingForBlockingCall
        waitingForBlockingCall = []
        for continuation in waiting { continuation.resume() }
        if case .failure(let error) = result, error == .noDevice { goneFlag.store(true, ordering: .releasing) }
        return try result.get()
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
