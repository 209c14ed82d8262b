import Foundation
import Synchronization

/// The daemon's leases (a ``LeaseBook`` behind a lock) and their ending: a lease whose time is
/// up, or that an admin ended, is handed to `end` (which cuts its streams and releases the
/// claims it covered) exactly once. One task for all leases ends them on time: it sleeps until
/// the next expiry, is woken early only when a grant expires sooner, and stops when no lease is
/// left, so neither many leases nor a renewal loop add tasks.
final class LeaseTable: Sendable {
    /// Why a lease ends.
    enum Ending: String, Sendable {
        case expired
        case endedByAdmin = "ended by an admin"
        case deviceDidNotReturn = "ended: its device did not come back within the grace"
    }
    typealias End = @Sendable (_ lease: Lease, _ why: Ending) async -> Void

    private struct Reaper {
        var running = false
        /// The sleep until `wakeAt`; cancelled to wake the reaper sooner.
        var sleeper: Task<Void, Never>?
        var wakeAt: ContinuousClock.Instant?
    }
    private struct State {
        var book = LeaseBook()
        var reaper = Reaper()
    }
    private let state = Mutex(State())
    private let end: End
    /// Told the device of every lease granted, renewed, released or ended (the event stream's
    /// `activity`).
    private let changed: @Sendable (_ device: String) -> Void

    init(end: @escaping End = { _, _ in }, changed: @escaping @Sendable (_ device: String) -> Void = { _ in }) {
        self.changed = changed
        self.end = end
    }

    /// Ends `lease` (``end``), once it is out of the book, and tells ``changed``.
    private func finish(_ lease: Lease, _ why: Ending) async {
        changed(lease.device)
        await end(lease, why)
    }

    private static var now: LeaseBook.Now { LeaseBook.Now(instant: .now, unix: Date().timeIntervalSince1970) }

    /// A new lease, or the lease in the way. Expired leases it found are ended before it returns.
    func grant(
        device: String, interface: UInt8?, holder: String, ttl: Duration, grace: Duration = .seconds(60)
    ) async throws(LeaseProblem) -> Lease {
        let (lease, ended) = try state.withLock { (state: inout State) throws(LeaseProblem) in
            let granted = try state.book.grant(
                device: device, interface: interface, holder: holder, ttl: ttl, id: Secret.hex(bytes: 8),
                token: Secret.hex(bytes: 24), now: Self.now, grace: grace)
            schedule(&state, granted.lease.expires)
            return granted
        }
        for old in ended { await finish(old, Self.ending(of: old)) }
        changed(lease.device)
        return lease
    }

    /// Told after every device change which devices are present (``LeaseBook/devicesPresent(_:now:)``).
    func devicesPresent(_ present: Set<String>) {
        state.withLock { state in
            if let soonest = state.book.devicesPresent(present, now: Self.now) { schedule(&state, soonest) }
        }
    }

    /// Why a lease whose time is up ends.
    private static func ending(of lease: Lease) -> Ending { lease.goneSince == nil ? .expired : .deviceDidNotReturn }

    /// Extends lease `id` to `ttl` from now, for the holder of its token.
    func renew(id: String, token: String?, ttl: Duration) throws(LeaseProblem) -> Lease {
        let lease = try state.withLock { (state: inout State) throws(LeaseProblem) in
            let lease = try state.book.renew(id: id, token: token, ttl: ttl, now: Self.now)
            // Renewed shorter, it ends sooner: the reaper must wake by then, not at the old end.
            schedule(&state, lease.expires)
            return lease
        }
        changed(lease.device)
        return lease
    }

    /// Ends lease `id` for the holder of its token; its claims stay the holder's.
    func release(id: String, token: String?) throws(LeaseProblem) -> Lease {
        let lease = try state.withLock { (state: inout State) throws(LeaseProblem) in
            try state.book.release(id: id, token: token, now: .now)
        }
        changed(lease.device)
        return lease
    }

    /// Ends lease `id` whoever holds it (an admin's call): its streams are cut and its claims released.
    func endByAdmin(id: String) async throws(LeaseProblem) -> Lease {
        let lease = try state.withLock { (state: inout State) throws(LeaseProblem) in
            try state.book.release(id: id, token: nil, force: true, now: .now)
        }
        await finish(lease, .endedByAdmin)
        return lease
    }

    /// ``LeaseBook/check(device:interface:token:now:)`` now.
    func check(device: String, interface: UInt8?, token: String?) throws(LeaseProblem) -> Lease? {
        try state.withLock { (state: inout State) throws(LeaseProblem) in
            try state.book.check(device: device, interface: interface, token: token, now: .now)
        }
    }

    /// Leases held now, oldest grant first.
    var all: [Lease] { state.withLock { $0.book.live(now: .now) } }

    /// Whether the reaper task runs (while any lease is in the book).
    var reaperRunning: Bool { state.withLock { $0.reaper.running } }

    /// Makes sure the reaper will wake by `expiry`.
    private func schedule(_ state: inout State, _ expiry: ContinuousClock.Instant) {
        if !state.reaper.running {
            state.reaper.running = true
            Task { await self.reap() }
        } else if let wakeAt = state.reaper.wakeAt, expiry < wakeAt {
            state.reaper.sleeper?.cancel()
        }
        // Running without a wake time: it is ending leases, and reads the next expiry (this
        // one included) under the lock when done.
    }

    /// Ends the leases whose time is up, sleeps until the next runs out, and stops when the book is empty.
    private func reap() async {
        while true {
            let expired = state.withLock { $0.book.takeExpired(now: .now) }
            for lease in expired { await finish(lease, Self.ending(of: lease)) }
            let sleeper = state.withLock { state -> Task<Void, Never>? in
                guard let next = state.book.nextExpiry else {
                    state.reaper = Reaper()
                    return nil
                }
                let sleeper = Task { _ = try? await Task.sleep(until: next, clock: .continuous) }
                state.reaper.sleeper = sleeper
                state.reaper.wakeAt = next
                return sleeper
            }
            guard let sleeper else { return }
            await sleeper.value
            state.withLock {
                $0.reaper.sleeper = nil
                $0.reaper.wakeAt = nil
            }
        }
    }
}
