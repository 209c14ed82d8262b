import Synchronization

/// A request rate per client: a token bucket for each client key (a token's name, or an
/// address), refilled at `perSecond` and holding at most `burst` (so a client may send that
/// many at once). Buckets that have refilled are forgotten when there are many (looked for at
/// most once a second), and a flood of new keys past ``maxBuckets`` starts it over: keys from
/// many addresses can neither grow it without bound nor make each request pay for a sweep.
final class RateLimiter: Sendable {
    private struct Bucket {
        var level: Double
        var updated: ContinuousClock.Instant
    }

    let perSecond: Int
    let burst: Int
    /// Buckets kept before the full ones are forgotten.
    static let keptBuckets = 4096
    /// Buckets never held past this.
    static let maxBuckets = 4 * keptBuckets
    private struct State {
        var buckets: [String: Bucket] = [:]
        var swept: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    init(perSecond: Int, burst: Int? = nil) {
        precondition(perSecond >= 1)
        self.perSecond = perSecond
        self.burst = max(burst ?? perSecond, 1)
    }

    /// Nil if a request of `key` may go ahead now (it takes one from the bucket), else how
    /// long until one may.
    func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Duration? {
        update(key, now: now, take: true)
    }

    /// Like ``admit(_:now:)`` without taking: whether `key` has nothing left now.
    func exhausted(_ key: String, now: ContinuousClock.Instant = .now) -> Duration? {
        update(key, now: now, take: false)
    }

    /// Buckets held now.
    var count: Int { state.withLock { $0.buckets.count } }

    private func update(_ key: String, now: ContinuousClock.Instant, take: Bool) -> Duration? {
        let rate = Double(perSecond)
        let capacity = Double(burst)
        return state.withLock { state -> Duration? in
            var bucket = state.buckets[key] ?? Bucket(level: capacity, updated: now)
            bucket.level = min(capacity, bucket.level + max((now - bucket.updated).seconds, 0) * rate)
            bucket.updated = now
            guard bucket.level >= 1 else {
                state.buckets[key] = bucket
                return .seconds((1 - bucket.level) / rate)
            }
            if take { bucket.level -= 1 }
            if bucket.level < capacity || state.buckets[key] != nil { state.buckets[key] = bucket }
            if state.buckets.count > Self.keptBuckets, state.swept.map({ now - $0 >= .seconds(1) }) ?? true {
                state.swept = now
                Self.forgetFull(&state.buckets, now: now, rate: rate, capacity: capacity)
            }
            if state.buckets.count > Self.maxBuckets { state.buckets = [key: bucket] }
            return nil
        }
    }

    /// Drops the buckets that would be full by now: they hold no state.
    private static func forgetFull(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant, rate: Double, capacity: Double) {
        buckets = buckets.filter { _, bucket in bucket.level + (now - bucket.updated).seconds * rate < capacity }
    }
}
