/// Endpoint 0 is one pipe: a device takes one control request at a time, and the host
/// controller runs a device's control URBs one after the other. A slow request (a vendor
/// request the firmware answers late, a timeout of minutes) would make every other client's
/// control requests time out behind it without ever reaching the device. The daemon keeps
/// them in one queue per device instead, first come first served, with two rules:
///
/// - A waiter's own timeout counts while it waits: it is answered when it runs out (timed out,
///   nothing sent), never later; its timeout on the device starts when it is submitted.
/// - A request that has held endpoint 0 for ``holdLimit`` while another client waits is cut
///   (cancelled, answered as timed out): USB 2.0 (9.2.6.4) gives a device 5 s to complete a
///   request, the default limit. A client's own requests queue behind each other without it.
///
/// A value with no I/O: events in, actions out (``ControlQueue`` does them on the loop).
struct ControlQueueMachine: Sendable {
    struct Waiter: Sendable, Equatable {
        var id: UInt64
        var client: String
        /// When its own timeout runs out (CoarseClock ms); .max for none.
        var deadline: Int64
    }

    private struct Holder: Sendable {
        var id: UInt64
        var client: String
        var since: Int64
        var cut = false
    }

    enum Action: Sendable, Equatable {
        /// Submit it now: endpoint 0 is its.
        case start(UInt64)
        /// Its timeout ran out while it waited: answer it timed out, nothing sent.
        case expire(UInt64)
        /// It held endpoint 0 past the limit while another client waited: cancel it.
        case cut(UInt64)
    }

    let holdLimit: Int64
    private var holder: Holder?
    private var waiting: [Waiter] = []

    init(holdLimit: Int64) {
        self.holdLimit = holdLimit
    }

    /// The request on endpoint 0 now, and those waiting, first first.
    var holding: UInt64? { holder?.id }
    var waitingIDs: [UInt64] { waiting.map(\.id) }

    mutating func arrive(_ waiter: Waiter, now: Int64) -> [Action] {
        guard holder != nil else {
            holder = Holder(id: waiter.id, client: waiter.client, since: now)
            return [.start(waiter.id)]
        }
        waiting.append(waiter)
        return tick(now: now)
    }

    /// Request `id` ended (completed, failed, or left while waiting).
    mutating func leave(_ id: UInt64, now: Int64) -> [Action] {
        if holder?.id == id {
            holder = nil
            return startNext(now: now) + tick(now: now)
        }
        waiting.removeAll { $0.id == id }
        return []
    }

    /// Time passed: waiters whose timeout ran out expire; a holder past the limit while
    /// another client waits is cut.
    mutating func tick(now: Int64) -> [Action] {
        var actions: [Action] = waiting.filter { $0.deadline <= now }.map { .expire($0.id) }
        waiting.removeAll { $0.deadline <= now }
        if var held = holder, !held.cut, now - held.since >= holdLimit, waiting.contains(where: { $0.client != held.client }) {
            held.cut = true
            holder = held
            actions.append(.cut(held.id))
        }
        return actions
    }

    /// When ``tick(now:)`` has something to do next, if ever.
    var nextDeadline: Int64? {
        var next = waiting.map(\.deadline).min()
        if let held = holder, !held.cut, waiting.contains(where: { $0.client != held.client }) {
            next = min(next ?? .max, held.since + holdLimit)
        }
        return next == .max ? nil : next
    }

    private mutating func startNext(now: Int64) -> [Action] {
        var actions: [Action] = []
        while !waiting.isEmpty {
            let next = waiting.removeFirst()
            if next.deadline <= now {
                actions.append(.expire(next.id))
                continue
            }
            holder = Holder(id: next.id, client: next.client, since: now)
            actions.append(.start(next.id))
            break
        }
        return actions
    }
}
