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
    /// How long the device may be away (a re-enumeration, a firmware update) before the lease
    /// ends without it; its holder keeps the port meanwhile.
    var grace: Duration = .seconds(60)
    /// Since when its device is away (nil: present), monotonic and as Unix time.
    var goneSince: LeaseBook.Now?
    /// What the holder last renewed it to, whatever the device does.
    var renewed: LeaseBook.Now

    init(
        id: String, token: String, device: String, interface: UInt8?, holder: String, fencing: UInt64,
        renewed: LeaseBook.Now, grace: Duration = .seconds(60)
    ) {
        self.id = id
        self.token = token
        self.device = device
        self.interface = interface
        self.holder = holder
        self.fencing = fencing
        self.renewed = renewed
        self.grace = grace
    }

    /// When it runs out: when its holder last renewed it to, or, while its device is away,
    /// the end of its grace if that comes sooner.
    var end: LeaseBook.Now {
        guard let gone = goneSince, gone.instant + grace < renewed.instant else { return renewed }
        return LeaseBook.Now(instant: gone.instant + grace, unix: gone.unix + grace.seconds)
    }

    var expires: ContinuousClock.Instant { end.instant }
    /// `expires` as Unix time, for the API.
    var expiresAt: Double { end.unix }

    func covers(device: String, interface: UInt8?) -> Bool {
        self.device == device && (self.interface == nil || interface == nil || self.interface == interface)
    }
}

/// Every lease, as a value: grants never overlap (a device lease excludes any other lease on
/// the device; an interface lease excludes a device lease and another on the same interface),
/// tokens are checked, fencing numbers grow. No clock, no randomness and no I/O: each call is
/// given the time, and a lease whose time is up stays in the book, held by nobody, until
/// ``takeExpired(now:)`` or a grant hands it out to be ended (its claims released). Every
/// lease comes out of the book exactly once.
struct LeaseBook: Sendable {
    private(set) var leases: [String: Lease] = [:]
    private(set) var fencing: UInt64 = 0

    /// A time, monotonic and as Unix time.
    struct Now: Sendable, Equatable {
        var instant: ContinuousClock.Instant
        var unix: Double
    }

    /// A new lease with `id` and `token`, or the lease in the way; with the expired leases
    /// taken out meanwhile, which the caller ends before anyone can act under the new one.
    mutating func grant(
        device: String, interface: UInt8?, holder: String, ttl: Duration, id: String, token: String, now: Now,
        grace: Duration = .seconds(60)
    ) throws(LeaseProblem) -> (lease: Lease, ended: [Lease]) {
        if let held = leases.values.first(where: { $0.expires > now.instant && $0.covers(device: device, interface: interface) }) {
            throw .held(held)
        }
        let ended = takeExpired(now: now.instant)
        fencing += 1
        let lease = Lease(
            id: id, token: token, device: device, interface: interface, holder: holder, fencing: fencing,
            renewed: Now(instant: now.instant + ttl, unix: now.unix + ttl.seconds), grace: grace)
        leases[id] = lease
        return (lease, ended)
    }

    /// Extends lease `id` to `ttl` from now, for the holder of its token.
    mutating func renew(id: String, token: String?, ttl: Duration, now: Now) throws(LeaseProblem) -> Lease {
        guard var lease = leases[id], lease.expires > now.instant else { throw .notFound(id) }
        guard Self.same(token, lease.token) else { throw .wrongToken(lease) }
        lease.renewed = Now(instant: now.instant + ttl, unix: now.unix + ttl.seconds)
        leases[id] = lease
        return lease
    }

    /// Which devices are present now: a lease whose device left runs out at the end of its
    /// grace unless the device comes back to the port first (a re-enumeration, a firmware
    /// update), and runs on as renewed once it is back. The soonest new expiry, if any
    /// came sooner.
    mutating func devicesPresent(_ present: Set<String>, now: Now) -> ContinuousClock.Instant? {
        var soonest: ContinuousClock.Instant?
        for var lease in leases.values where lease.expires > now.instant {
            let here = present.contains(lease.device)
            guard here == (lease.goneSince != nil) else { continue }
            let before = lease.expires
            lease.goneSince = here ? nil : now
            leases[lease.id] = lease
            if lease.expires < before { soonest = min(soonest ?? lease.expires, lease.expires) }
        }
        return soonest
    }

    /// Takes lease `id` out for the holder of its token, or (`force`) for anyone.
    mutating func release(id: String, token: String?, force: Bool = false, now: ContinuousClock.Instant) throws(LeaseProblem)
        -> Lease
    {
        guard let lease = leases[id], lease.expires > now else { throw .notFound(id) }
        guard force || Self.same(token, lease.token) else { throw .wrongToken(lease) }
        leases[id] = nil
        return lease
    }

    /// Passes when no live lease covers what a request changes, or the request shows that
    /// lease's token. `interface` nil: the request changes the whole device (every lease on
    /// it counts).
    func check(device: String, interface: UInt8?, token: String?, now: ContinuousClock.Instant) throws(LeaseProblem) -> Lease? {
        var shown: Lease?
        for lease in leases.values where lease.expires > now && lease.covers(device: device, interface: interface) {
            guard Self.same(token, lease.token) else { throw .held(lease) }
            shown = lease
        }
        return shown
    }

    /// The leases held at `now`, oldest grant first.
    func live(now: ContinuousClock.Instant) -> [Lease] {
        leases.values.filter { $0.expires > now }.sorted { $0.fencing < $1.fencing }
    }

    /// Takes out the leases whose time is up, oldest grant first.
    mutating func takeExpired(now: ContinuousClock.Instant) -> [Lease] {
        let expired = leases.values.filter { $0.expires <= now }.sorted { $0.fencing < $1.fencing }
        for lease in expired { leases[lease.id] = nil }
        return expired
    }

    /// When the next lease runs out.
    var nextExpiry: ContinuousClock.Instant? { leases.values.lazy.map(\.expires).min() }

    /// The shown token is the lease's: their digests compared in constant time.
    private static func same(_ shown: String?, _ token: String) -> Bool {
        guard let shown else { return false }
        return TokenDigest(of: Array(shown.utf8)).matches(TokenDigest(of: Array(token.utf8)))
    }
}

/// A duration in seconds, as a Double: lease times, the rate limiter's buckets, stream rates.
extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
