import HTTPServer
import Synchronization

/// Bounds the streams open at once, per device and in all: each stream holds a slot from
/// start to end. Past a bound, 503 `too-many-streams` with `Retry-After`.
final class StreamSlots: Sendable {
    let perDevice: Int
    let total: Int
    private let open = Mutex<[String: Int]>([:])

    init(perDevice: Int, total: Int) {
        self.perDevice = perDevice
        self.total = total
    }

    /// A slot for a stream of `device`, given back by ``Slot/release()`` (or when dropped).
    func acquire(device: String) throws(TooManyStreams) -> Slot {
        try open.withLock { (open: inout [String: Int]) throws(TooManyStreams) in
            let all = open.values.reduce(0, +)
            guard all < total else { throw TooManyStreams(device: device, limit: total, perDevice: false) }
            guard open[device, default: 0] < perDevice else {
                throw TooManyStreams(device: device, limit: perDevice, perDevice: true)
            }
            open[device, default: 0] += 1
        }
        return Slot(slots: self, device: device)
    }

    /// Streams open now, in all.
    var count: Int { open.withLock { $0.values.reduce(0, +) } }

    fileprivate func release(_ device: String) {
        open.withLock { open in
            open[device, default: 1] -= 1
            if open[device] == 0 { open[device] = nil }
        }
    }

    /// One stream's place; released once.
    final class Slot: Sendable {
        private let slots: StreamSlots
        private let device: String
        private let released = Atomic(false)

        fileprivate init(slots: StreamSlots, device: String) {
            self.slots = slots
            self.device = device
        }

        func release() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            slots.release(device)
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
