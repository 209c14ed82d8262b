import Dispatch
import EventLoop
import Synchronization
import USB

/// A device for unit tests, below ``DeviceSession`` (a ``DeviceIO``): no USB at all. It records
/// every blocking call and every URB, and answers each URB as the test's script says: at once,
/// later (``complete(_:with:)``), never (held until cancelled or timed out), or by refusing
/// it. It behaves as libusb does where the layers above depend on it: completions come on the
/// event loop and never inside the submission, a cancelled URB completes as `cancelled`, a
/// URB with a timeout that nothing answers completes as `timed_out` (with the bytes its script
/// gave so far), an unplugged device completes everything in flight as `no_device` and
/// refuses what comes after.
///
/// It is not a USB stack: tests that claim to test USB run in the lab.
public final class ScriptedDevice: DeviceIO, @unchecked Sendable {
    /// What a URB's script answers when it is submitted.
    public enum Reply: Sendable {
        /// Ends at once (on the loop, after the submission returns): IN data copied into the
        /// buffer (after the setup packet for control), `actualLength` moved (nil: the data's
        /// count for IN, the whole length for OUT).
        case complete(TransferStatus = .completed, data: [UInt8] = [], actualLength: Int? = nil)
        /// Stays in flight until the test completes it, it is cancelled, it times out, or the
        /// device is unplugged. `partial`: IN bytes that came already (kept on a timeout or cancel).
        case hold(partial: [UInt8] = [])
        /// The submission fails with this error; nothing is queued.
        case refuse(USBError)
    }

    /// One URB as the device saw it submitted.
    public struct Submitted: Sendable {
        public let id: Int
        public let endpoint: UInt8
        public let type: TransferType
        public let length: Int
        public let timeout: UInt32
        public let flags: URBFlags
        /// A control transfer's setup packet.
        public let setup: ControlSetup?
        /// What an OUT URB carried (the data stage for control).
        public let data: [UInt8]
        /// An isochronous URB's packet lengths.
        public let isoPackets: [Int]
    }

    public let loop: EventLoop
    /// Answers each URB; the default completes everything, reads with nothing.
    public let script: Mutex<@Sendable (Submitted) -> Reply>
    /// Whether libusb_dev_mem_alloc works (else the layers above fall back to the heap).
    public let dmaWorks = Atomic<Bool>(true)

    private struct Record {
        var calls: [String] = []
        var submitted: [Submitted] = []
        var nextID = 0
        var claimed: Set<UInt8> = []
        var driverBound: Set<UInt8> = []
        /// Interfaces a kernel driver is for (bindDriver): what USBDEVFS_CONNECT binds again.
        var drivers: Set<UInt8> = []
        /// libusb_set_auto_detach_kernel_driver: a claim detaches, a release attaches again.
        var autoDetach = false
        var gone = false
        var dmaBytes = 0
        var blockingFailure: [String: USBError] = [:]
    }

    private let record = Mutex(Record())
    /// URBs in flight, by id (on the loop).
    private var inFlight: [Int: FakeURB] = [:]

    public init(loop: EventLoop, script: @escaping @Sendable (Submitted) -> Reply = { _ in .complete() }) {
        self.loop = loop
        self.script = Mutex(script)
    }

    // MARK: What the test sees and does

    /// Every blocking call so far, in order ("claim 0", "release 0", "reset", …).
    public var calls: [String] { record.withLock { $0.calls } }
    /// Every URB submitted so far, in order.
    public var submitted: [Submitted] { record.withLock { $0.submitted } }
    /// DMA bytes handed out and not given back.
    public var dmaBytesInUse: Int { record.withLock { $0.dmaBytes } }
    /// Interfaces with a kernel driver bound (claims with detach unbind it).
    public func bindDriver(_ interface: UInt8) {
        record.withLock {
            $0.driverBound.insert(interface)
            $0.drivers.insert(interface)
        }
    }

    /// Whether a kernel driver is bound to `interface` now.
    public func driverIsBound(_ interface: UInt8) -> Bool { record.withLock { $0.driverBound.contains(interface) } }
    /// The next blocking call named `name` ("claim", "reset", …) fails with `error`.
    public func failNext(_ name: String, with error: USBError) { record.withLock { $0.blockingFailure[name] = error } }

    /// URBs in flight now, in submission order. On the loop.
    public var held: [Submitted] {
        loop.preconditionInEventLoop()
        return inFlight.keys.sorted().compactMap { inFlight[$0]?.submitted }
    }

    /// URBs in flight now, from any thread.
    public func heldURBs() async -> [Submitted] {
        await withCheckedContinuation { continuation in
            loop.execute { [self] in continuation.resume(returning: held) }
        }
    }

    /// Waits (up to 10 s) until `count` URBs are in flight, from any thread; them.
    public func waitForHeld(_ count: Int) async throws -> [Submitted] {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let now = await heldURBs()
            if now.count >= count || ContinuousClock.now > deadline { return now }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Completes held URB `id` (from any thread: done on the loop).
    public func complete(_ id: Int, with reply: Reply) {
        loop.execute { [self] in
            guard let urb = inFlight[id], case .complete(let status, let data, let actual) = reply else { return }
            finish(urb, status: status, data: data, actualLength: actual)
        }
    }

    /// The device is unplugged: everything in flight completes as `no_device`, later submissions
    /// and blocking calls fail with LIBUSB_ERROR_NO_DEVICE.
    public func unplug() {
        record.withLock { $0.gone = true }
        loop.execute { [self] in
            for id in inFlight.keys.sorted() {
                if let urb = inFlight[id] { finish(urb, status: .noDevice, data: urb.partial, actualLength: nil) }
            }
        }
    }

    // MARK: DeviceIO

    public func makeURB(
        _ spec: URBSpec, buffer: UnsafeMutableRawBufferPointer, completion: @escaping @Sendable () -> Void
    ) throws(USBError) -> any URB {
        FakeURB(device: self, spec: spec, buffer: buffer, completion: completion)
    }

    public func allocateDMA(_ size: Int) -> UnsafeMutableRawPointer? {
        guard dmaWorks.load(ordering: .relaxed) else { return nil }
        record.withLock { $0.dmaBytes += size }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    }

    public func freeDMA(_ pointer: UnsafeMutableRawPointer, size: Int) {
        record.withLock { $0.dmaBytes -= size }
        pointer.deallocate()
    }

    public func kernelDriverActive(interface: UInt8) throws(USBError) -> Bool {
        try call("kernel-driver-active \(interface)", "kernel-driver-active") { $0.driverBound.contains(interface) }
    }

    public func detachKernelDriver(interface: UInt8) throws(USBError) {
        try call("detach \(interface)", "detach") { record throws(USBError) in
            guard record.driverBound.remove(interface) != nil else { throw .notFound }
        }
    }

    public func attachKernelDriver(interface: UInt8) throws(USBError) {
        try call("attach \(interface)", "attach") { record throws(USBError) in
            if record.claimed.contains(interface) { throw .busy }
            record.driverBound.insert(interface)
        }
    }

    public func setAutoDetachKernelDriver(_ enabled: Bool) throws(USBError) {
        record.withLock { $0.autoDetach = enabled }
    }

    /// As libusb on Linux: with auto-detach a bound driver is detached first, else it makes the
    /// claim fail BUSY.
    public func claimInterface(_ interface: UInt8) throws(USBError) {
        try call("claim \(interface)", "claim") { record throws(USBError) in
            if record.driverBound.contains(interface) {
                guard record.autoDetach else { throw .busy }
                record.driverBound.remove(interface)
            }
            record.claimed.insert(interface)
        }
    }

    /// As libusb on Linux: with auto-detach the release attaches the interface's driver again
    /// (USBDEVFS_CONNECT), whoever detached it.
    public func releaseInterface(_ interface: UInt8) throws(USBError) {
        try call("release \(interface)", "release") { record throws(USBError) in
            guard record.claimed.remove(interface) != nil else { throw .notFound }
            if record.autoDetach && record.drivers.contains(interface) { record.driverBound.insert(interface) }
        }
    }

    public func setConfiguration(_ value: UInt8?) throws(USBError) {
        try call("configuration \(value.map(String.init) ?? "none")", "configuration") { _ in }
    }

    public func setAltSetting(interface: UInt8, altSetting: UInt8) throws(USBError) {
        try call("alt-setting \(interface) \(altSetting)", "alt-setting") { _ in }
    }

    public func clearHalt(endpoint: UInt8) throws(USBError) {
        try call("clear-halt \(endpoint)", "clear-halt") { _ in }
    }

    public func reset() throws(USBError) {
        try call("reset", "reset") { _ in }
    }

    /// Records a blocking call and runs it, unless the device is gone or the test asked it to fail.
    private func call<T: Sendable>(_ line: String, _ name: String, _ body: (inout Record) throws(USBError) -> T)
        throws(USBError) -> T
    {
        var failure: USBError?
        var value: T?
        record.withLock { record in
            record.calls.append(line)
            if record.gone {
                failure = .noDevice
            } else if let error = record.blockingFailure.removeValue(forKey: name) {
                failure = error
            } else {
                do throws(USBError) { value = try body(&record) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return value!
    }

    // MARK: URBs (on the loop)

    fileprivate func submit(_ urb: FakeURB) -> USBError? {
        loop.preconditionInEventLoop()
        let setup = urb.spec.type == .control ? Self.setup(of: urb.buffer) : nil
        let isOut = urb.spec.type == .control ? setup?.direction == .out : urb.spec.endpoint & 0x80 == 0
        let dataStart = urb.spec.type == .control ? 8 : 0
        let data: [UInt8] =
            isOut ? Array(UnsafeRawBufferPointer(rebasing: urb.buffer[dataStart..<max(dataStart, urb.length)])) : []
        let (submitted, gone) = record.withLock { record -> (Submitted, Bool) in
            let submitted = Submitted(
                id: record.nextID, endpoint: urb.spec.endpoint, type: urb.spec.type, length: urb.length,
                timeout: urb.spec.timeout, flags: urb.spec.flags, setup: setup, data: data, isoPackets: urb.isoLengths)
            record.nextID += 1
            record.submitted.append(submitted)
            return (submitted, record.gone)
        }
        if gone { return .noDevice }
        let reply = script.withLock { $0 }(submitted)
        switch reply {
        case .refuse(let error):
            return error
        case .complete(let status, let data, let actual):
            urb.start(submitted)
            inFlight[submitted.id] = urb
            loop.execute { [self] in finish(urb, status: status, data: data, actualLength: actual) }
        case .hold(let partial):
            urb.start(submitted)
            urb.partial = partial
            inFlight[submitted.id] = urb
            if urb.spec.timeout > 0 {
                let loop = self.loop
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(urb.spec.timeout))) {
                    loop.execute { [self] in
                        if urb.submitted?.id == submitted.id {
                            finish(urb, status: .timedOut, data: urb.partial, actualLength: nil)
                        }
                    }
                }
            }
        }
        return nil
    }

    fileprivate func cancel(_ urb: FakeURB) {
        loop.preconditionInEventLoop()
        guard let submitted = urb.submitted else { return }
        // As libusb: the cancellation is asynchronous, the completion comes later.
        loop.execute { [self] in
            if urb.submitted?.id == submitted.id { finish(urb, status: .cancelled, data: urb.partial, actualLength: nil) }
        }
    }

    /// Ends an URB in flight: its data and status in place, then its completion.
    private func finish(_ urb: FakeURB, status: TransferStatus, data: [UInt8], actualLength: Int?) {
        guard let submitted = urb.submitted, inFlight.removeValue(forKey: submitted.id) != nil else { return }
        let isIn = submitted.type == .control ? submitted.setup?.direction == .in : submitted.endpoint & 0x80 != 0
        let offset = submitted.type == .control ? 8 : 0
        var moved = actualLength ?? (isIn ? data.count : submitted.length - offset)
        if isIn {
            let count = min(data.count, urb.buffer.count - offset, submitted.length - offset)
            UnsafeMutableRawBufferPointer(rebasing: urb.buffer[offset..<offset + count]).copyBytes(from: data.prefix(count))
            moved = min(moved, count)
        }
        urb.end(status: status, actualLength: max(0, moved))
    }

    private static func setup(of buffer: UnsafeMutableRawBufferPointer) -> ControlSetup? {
        guard buffer.count >= 8, let (direction, kind, recipient) = ControlSetup.parts(of: buffer[0]) else { return nil }
        return ControlSetup(
            direction: direction, kind: kind, recipient: recipient, request: buffer[1],
            value: UInt16(buffer[2]) | UInt16(buffer[3]) << 8, index: UInt16(buffer[4]) | UInt16(buffer[5]) << 8,
            length: UInt16(buffer[6]) | UInt16(buffer[7]) << 8)
    }
}

/// A URB of a ``ScriptedDevice``.
/// Used on the event loop only, as every URB (@unchecked: the loop confines it).
private final class FakeURB: URB, @unchecked Sendable {
    let spec: URBSpec
    let buffer: UnsafeMutableRawBufferPointer
    unowned let device: ScriptedDevice
    let completion: @Sendable () -> Void
    var length: Int
    private(set) var status = TransferStatus.completed
    private(set) var actualLength = 0
    var isoLengths: [Int] = []
    /// The submission in flight, nil when idle.
    private(set) var submitted: ScriptedDevice.Submitted?
    var partial: [UInt8] = []

    init(device: ScriptedDevice, spec: URBSpec, buffer: UnsafeMutableRawBufferPointer, completion: @escaping @Sendable () -> Void) {
        self.device = device
        self.spec = spec
        self.buffer = buffer
        self.completion = completion
        self.length = spec.length
    }

    func setIsoPacketLengths(_ lengths: [Int]) { isoLengths = lengths }

    func isoPacketResults(count: Int) -> [IsoPacketResult] {
        // Every packet moved what it offered, up to what the transfer moved in all.
        var left = actualLength
        return isoLengths.prefix(count).map { length in
            let moved = min(length, left)
            left -= moved
            return IsoPacketResult(length: length, actualLength: moved, status: status == .completed ? .completed : status)
        }
    }

    func submit() -> USBError? { device.submit(self) }
    func cancel() { device.cancel(self) }

    func start(_ submission: ScriptedDevice.Submitted) {
        submitted = submission
        status = .completed
        actualLength = 0
        partial = []
    }

    func end(status: TransferStatus, actualLength: Int) {
        self.status = status
        self.actualLength = actualLength
        submitted = nil
        completion()
    }
}
