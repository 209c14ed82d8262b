import Foundation
import Synchronization

/// A client's hold on a device, or on one interface of it, for a time it renews. While it is
/// held, requests that change what it covers must carry its token (`X-USB-Lease`).
struct Lease: Sendable, Equatable {
    /// Names the lease in `/v1/leases/{lease}`; not a secret.
    var id: String
    /// The secret a request shows to act under the lease.
    var token: String
    var device: String
    /// nil: the whole device.
    var interface: UInt8?
    /// Who took it: the bearer token's name, or "anonymous".
    var holder: String
    /// Grows with every grant, daemon-wide: a stale holder's number is smaller.
    var fencing: UInt64
    var expires: ContinuousClock.Instant
    var expiresAt: Double

    func covers(device: String, interface: UInt8?) -> Bool {
        self.device == device && (self.interface == nil || interface == nil || self.interface == interface)
    }
}

/// Every lease held now. Grants never overlap: a device lease excludes any other lease on the
/// device; an interface lease excludes a device lease and another on the same interface.
final class LeaseTable: Sendable {
    private struct State {
        var leases: [String: Lease] = [:]
        var fencing: UInt64 = 0
    }
    private let state = Mutex(State())

    /// A new lease, or the lease in the way.
    func grant(device: String, interface: UInt8?, holder: String, ttl: Duration) throws(LeaseProblem) -> Lease {
        try state.withLock { (state: inout State) throws(LeaseProblem) -> Lease in
            Self.dropExpired(&state)
            if let held = state.leases.values.first(where: { $0.covers(device: device, interface: interface) }) {
                throw .held(held)
            }
            state.fencing += 1
            let lease = Lease(
                id: Self.random(8), token: Self.random(24), device: device, interface: interface, holder: holder,
                fencing: state.fencing, expires: .now + ttl, expiresAt: Date().timeIntervalSince1970 + ttl.seconds)
            state.leases[lease.id] = lease
            return lease
        }
    }

    /// Extends lease `id` to `ttl` from now, for the holder of its token.
    func renew(id: String, token: String?, ttl: Duration) throws(LeaseProblem) -> Lease {
        try state.withLock { (state: inout State) throws(LeaseProblem) -> Lease in
            Self.dropExpired(&state)
            guard var lease = state.leases[id] else { throw .notFound(id) }
            guard Self.same(token, lease.token) else { throw .wrongToken(lease) }
            lease.expires = .now + ttl
            lease.expiresAt = Date().timeIntervalSince1970 + ttl.seconds
            state.leases[id] = lease
            return lease
        }
    }

    /// Ends lease `id` for the holder of its token.
    func release(id: String, token: String?) throws(LeaseProblem) -> Lease {
        try state.withLock { (state: inout State) throws(LeaseProblem) -> Lease in
            Self.dropExpired(&state)
            guard let lease = state.leases[id] else { throw .notFound(id) }
            guard Self.same(token, lease.token) else { throw .wrongToken(lease) }
            state.leases[id] = nil
            return lease
        }
    }

    /// Passes when no lease covers what a request changes, or the request shows that lease's
    /// token. `interface` nil: the request changes the whole device (every lease on it counts).
    func check(device: String, interface: UInt8?, token: String?) throws(LeaseProblem) -> Lease? {
        try state.withLock { (state: inout State) throws(LeaseProblem) -> Lease? in
            var shown: Lease?
            for lease in state.leases.values where lease.expires > .now && lease.covers(device: device, interface: interface) {
                guard Self.same(token, lease.token) else { throw .held(lease) }
                shown = lease
            }
            return shown
        }
    }

    /// Leases held now, oldest grant first.
    var all: [Lease] {
        state.withLock { state in
            Self.dropExpired(&state)
            return state.leases.values.sorted { $0.fencing < $1.fencing }
        }
    }

    /// Removes and returns the leases whose time is up.
    func takeExpired() -> [Lease] {
        state.withLock { Self.dropExpired(&$0) }
    }

    @discardableResult
    private static func dropExpired(_ state: inout State) -> [Lease] {
        let now = ContinuousClock.now
        let expired = state.leases.values.filter { $0.expires <= now }
        for lease in expired { state.leases[lease.id] = nil }
        return expired
    }

    /// The shown token is the lease's: their digests compared in constant time.
    private static func same(_ shown: String?, _ token: String) -> Bool {
        guard let shown else { return false }
        return TokenDigest(of: Array(shown.utf8)).matches(TokenDigest(of: Array(token.utf8)))
    }

    private static func random(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return hex((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
