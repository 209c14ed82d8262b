import EventLoop
import HTTPServer
import Synchronization

/// Bounds the streams open at once: per device, per client (a token, or an address without
/// tokens) on one device (so that one client cannot take every slot of a device), per client
/// and in all. Each stream holds a slot from start to end. Past a bound, 503 `too-many-streams` with `Retry-After`. The slots also say
/// which interface each stream uses, so that a lease granted over it can cut it (``cut(device:interface:)``).
final class StreamSlots: Sendable {
    let perDevice: Int
    let perClientOnDevice: Int
    let perClient: Int
    let total: Int
    private struct Open {
        var devices: [String: Int] = [:]
        var clients: [String: Int] = [:]
        /// By client and device.
        var pairs: [Pair: Int] = [:]
        var all = 0
    }
    private struct Pair: Hashable {
        var client: String
        var device: String
    }
    private let open = Mutex(Open())
    private let live = Mutex<[ObjectIdentifier: WeakSlot]>([:])

    private struct WeakSlot {
        weak var slot: Slot?
    }

    /// Told a device and its streams open now, each time one starts or ends; and while metered
    /// streams run, every ``reportEvery`` milliseconds, with the bytes a second they move.
    private let changed: (@Sendable (_ device: String, _ open: Int, _ bytesPerSecond: Int?) -> Void)?
    let reportEvery: Int
    /// The metered streams' last samples, while a report is scheduled.
    private let report = Mutex<(running: Bool, last: [ObjectIdentifier: Sample])>((false, [:]))
    private struct Sample {
        var bytes: Int
        var at: ContinuousClock.Instant
    }

    init(
        perDevice: Int, perClientOnDevice: Int = .max, perClient: Int = .max, total: Int, reportEvery: Int = 1000,
        changed: (@Sendable (_ device: String, _ open: Int, _ bytesPerSecond: Int?) -> Void)? = nil
    ) {
        self.changed = changed
        self.reportEvery = reportEvery
        self.perDevice = perDevice
        self.perClientOnDevice = perClientOnDevice
        self.perClient = perClient
        self.total = total
    }

    /// A slot for a stream of `client` on `device`'s `interface` (nil: not known), given back
    /// by ``Slot/release()`` (or when dropped).
    func acquire(device: String, interface: UInt8? = nil, client: String = "") throws(TooManyStreams) -> Slot {
        let onDevice = try open.withLock { (open: inout Open) throws(TooManyStreams) -> Int in
            let pair = Pair(client: client, device: device)
            guard open.all < total else { throw TooManyStreams(device: device, limit: total, bound: .total) }
            guard open.devices[device, default: 0] < perDevice else {
                throw TooManyStreams(device: device, limit: perDevice, bound: .device)
            }
            guard open.pairs[pair, default: 0] < perClientOnDevice else {
                throw TooManyStreams(device: device, limit: perClientOnDevice, bound: .clientOnDevice)
            }
            guard open.clients[client, default: 0] < perClient else {
                throw TooManyStreams(device: device, limit: perClient, bound: .client)
            }
            open.all += 1
            open.devices[device, default: 0] += 1
            open.clients[client, default: 0] += 1
            open.pairs[pair, default: 0] += 1
            return open.devices[device, default: 0]
        }
        let slot = Slot(slots: self, device: device, interface: interface, client: client, counted: true)
        live.withLock { $0[ObjectIdentifier(slot)] = WeakSlot(slot: slot) }
        changed?(device, onDevice, nil)
        return slot
    }

    /// A place among the streams of `device` (on `interface`; nil: the whole device) that counts
    /// against no bound: for what a lease must be able to cut but that other limits bound (a
    /// URB channel, a console's writer: connections, bounded by the connection limits). Given
    /// back by ``Slot/release()`` (or when dropped).
    func watch(device: String, interface: UInt8? = nil, client: String = "") -> Slot {
        let slot = Slot(slots: self, device: device, interface: interface, client: client, counted: false)
        live.withLock { $0[ObjectIdentifier(slot)] = WeakSlot(slot: slot) }
        return slot
    }

    /// Cuts every open stream of `device` on `interface` (nil: on any interface), as a lease
    /// newly granted over them requires; how many.
    func cut(device: String, interface: UInt8?) -> Int {
        let matching = live.withLock { live in
            live.values.compactMap(\.slot).filter {
                $0.device == device && (interface == nil || $0.interface == nil || $0.interface == interface)
            }
        }
        for slot in matching { slot.cut() }
        return matching.count
    }

    /// Streams open now, in all.
    var count: Int { open.withLock { $0.all } }

    fileprivate func release(_ device: String, client: String, slot: ObjectIdentifier, counted: Bool) {
        live.withLock { _ = $0.removeValue(forKey: slot) }
        guard counted else { return }
        let onDevice = open.withLock { open in
            open.all -= 1
            Self.decrement(&open.devices, device)
            Self.decrement(&open.clients, client)
            Self.decrement(&open.pairs, Pair(client: client, device: device))
            return open.devices[device, default: 0]
        }
        changed?(device, onDevice, nil)
    }

    /// Whether reports are scheduled (while metered streams are open, and one period after).
    var reporting: Bool { report.withLock { $0.running } }

    /// Starts the reports on `loop` (where the metered streams run) unless they run already.
    fileprivate func metered(on loop: EventLoop) {
        let start = report.withLock { report in
            defer { report.running = true }
            return !report.running
        }
        if start { loop.schedule(after: reportEvery) { [weak self] in self?.tick(on: loop) } }
    }

    /// One report: each device's metered streams and the bytes a second they moved since the
    /// last (on the loop: a probe reads its stream there). Stops when none is left.
    private func tick(on loop: EventLoop) {
        // Sampled under the report's lock: a stream metered meanwhile finds the reports either
        // still running (and is in this sample) or stopped (and starts them again).
        let rates: [String: Double]? = report.withLock { report in
            let now = ContinuousClock.now
            let samples = live.withLock { $0.values.compactMap(\.slot) }.filter(\.isMetered).compactMap { slot in
                slot.bytesMoved().map { (slot, Sample(bytes: $0, at: now)) }
            }
            guard !samples.isEmpty else {
                report = (false, [:])
                return nil
            }
            var rates: [String: Double] = [:]
            var next: [ObjectIdentifier: Sample] = [:]
            for (slot, sample) in samples {
                let key = ObjectIdentifier(slot)
                next[key] = sample
                // A stream's first sample has no rate yet: it counts from the next.
                guard let last = report.last[key], sample.at > last.at else { continue }
                rates[slot.device, default: 0] += Double(sample.bytes - last.bytes) / (sample.at - last.at).seconds
            }
            report.last = next
            return rates
        }
        guard let rates else { return }
        for (device, rate) in rates.sorted(by: { $0.key < $1.key }) {
            changed?(device, open.withLock { $0.devices[device, default: 0] }, Int(rate))
        }
        loop.schedule(after: reportEvery) { [weak self] in self?.tick(on: loop) }
    }

    /// Counts one less for `key`, forgetting it at 0 (so that the maps hold only what is open).
    private static func decrement<Key: Hashable>(_ counts: inout [Key: Int], _ key: Key) {
        counts[key, default: 1] -= 1
        if counts[key] == 0 { counts[key] = nil }
    }

    /// One stream's place; released once. A stream that can be cut says how (``onCut(_:)``).
    final class Slot: Sendable {
        private let slots: StreamSlots
        let device: String
        let interface: UInt8?
        let client: String
        /// It counts against the bounds (a stream's), or only watches for cuts (``StreamSlots/watch(device:client:)``).
        let counted: Bool
        private let released = Atomic(false)
        /// How many bytes the stream has moved so far (``meter(on:_:)``), read on its loop.
        private let probe = Mutex<(@Sendable () -> Int)?>(nil)
        private let cutState = Mutex<(cut: Bool, handler: (@Sendable () -> Void)?)>((false, nil))

        fileprivate init(slots: StreamSlots, device: String, interface: UInt8?, client: String, counted: Bool) {
            self.slots = slots
            self.counted = counted
            self.device = device
            self.interface = interface
            self.client = client
        }

        /// Reports the stream's throughput (activity events) from `probe`, which says how many
        /// bytes it has moved so far, called on `loop` about once a second while it is open.
        func meter(on loop: EventLoop, _ probe: @escaping @Sendable () -> Int) {
            self.probe.withLock { $0 = probe }
            slots.metered(on: loop)
        }

        var isMetered: Bool { counted && !released.load(ordering: .acquiring) && probe.withLock { $0 != nil } }

        fileprivate func bytesMoved() -> Int? { probe.withLock { $0 }?() }

        /// Whether a lease has cut this stream.
        var isCut: Bool { cutState.withLock { $0.cut } }

        /// What cutting the stream does (run at once if it was cut already).
        func onCut(_ handler: @escaping @Sendable () -> Void) {
            let now = cutState.withLock { state -> Bool in
                state.handler = handler
                return state.cut
            }
            if now { handler() }
        }

        fileprivate func cut() {
            let handler = cutState.withLock { state -> (@Sendable () -> Void)? in
                guard !state.cut else { return nil }
                state.cut = true
                return state.handler
            }
            handler?()
        }

        func release() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            slots.release(device, client: client, slot: ObjectIdentifier(self), counted: counted)
        }

        deinit { release() }
    }
}

/// 503 `too-many-streams`: the per-device, per-client or total bound on open streams is reached.
struct TooManyStreams: HTTPResponseError, Sendable, Equatable {
    enum Bound: Sendable { case device, clientOnDevice, client, total }
    var device: String
    var limit: Int
    var bound: Bound

    var status: Int { 503 }
    var code: String { "too-many-streams" }
    var title: String { "Too many streams" }
    var detail: String {
        switch bound {
        case .device: "Device \(device) already has \(limit) streams open (--max-streams-per-device); try again when one ends."
        case .clientOnDevice:
            "This client already has \(limit) streams open on device \(device) (--max-client-streams-per-device); try again when one ends."
        case .client: "This client already has \(limit) streams open (--max-streams-per-client); try again when one ends."
        case .total: "The daemon already has \(limit) streams open (--max-streams); try again when one ends."
        }
    }
    var headers: HTTPHeaders { ["Retry-After": "1"] }
}
