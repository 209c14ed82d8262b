import HTTPServer
import Synchronization

/// Bounds the streams open at once, per device and in all: each stream holds a slot from
/// start to end. Past a bound, 503 `too-many-streams` with `Retry-After`. The slots also say
/// which interface each stream uses, so that a lease granted over it can cut it (``cut(device:interface:)``).
final class StreamSlots: Sendable {
    let perDevice: Int
    let total: Int
    private let open = Mutex<[String: Int]>([:])
    private let live = Mutex<[ObjectIdentifier: WeakSlot]>([:])

    private struct WeakSlot {
        weak var slot: Slot?
    }

    init(perDevice: Int, total: Int) {
        self.perDevice = perDevice
        self.total = total
    }

    /// A slot for a stream of `device` on `interface` (nil: not known), given back by
    /// ``Slot/release()`` (or when dropped).
    func acquire(device: String, interface: UInt8? = nil) throws(TooManyStreams) -> Slot {
        try open.withLock { (open: inout [String: Int]) throws(TooManyStreams) in
            let all = open.values.reduce(0, +)
            guard all < total else { throw TooManyStreams(device: device, limit: total, perDevice: false) }
            guard open[device, default: 0] < perDevice else {
                throw TooManyStreams(device: device, limit: perDevice, perDevice: true)
            }
            open[device, default: 0] += 1
        }
        let slot = Slot(slots: self, device: device, interface: interface)
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
    var count: Int { open.withLock { $0.values.reduce(0, +) } }

    fileprivate func release(_ device: String, slot: ObjectIdentifier) {
        live.withLock { _ = $0.removeValue(forKey: slot) }
        open.withLock { open in
            open[device, default: 1] -= 1
            if open[device] == 0 { open[device] = nil }
        }
    }

    /// One stream's place; released once. A stream that can be cut says how (``onCut(_:)``).
    final class Slot: Sendable {
        private let slots: StreamSlots
        let device: String
        let interface: UInt8?
        private let released = Atomic(false)
        private let cutState = Mutex<(cut: Bool, handler: (@Sendable () -> Void)?)>((false, nil))

        fileprivate init(slots: StreamSlots, device: String, interface: UInt8?) {
            self.slots = slots
            self.device = device
            self.interface = interface
        }

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
            slots.release(device, slot: ObjectIdentifier(self))
        }

        deinit { release() }
    }
}

/// 503 `too-many-streams`: the per-device or the total bound on open streams is reached.
struct TooManyStreams: HTTPResponseError, Sendable, Equatable {
    var device: String
    var limit: Int
    var perDevice: Bool

    var status: Int { 503 }
    var code: String { "too-many-streams" }
    var title: String { "Too many streams" }
    var detail: String {
        perDevice
            ? "Device \(device) already has \(limit) streams open (--max-streams-per-device); try again when one ends."
            : "The daemon already has \(limit) streams open (--max-streams); try again when one ends."
    }
    var headers: HTTPHeaders { ["Retry-After": "1"] }
}
