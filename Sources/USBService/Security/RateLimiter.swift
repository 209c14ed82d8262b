import Synchronization

/// A request rate per token: a token bucket for each token name, refilled at `perSecond`
/// and holding at most `perSecond` (so a client may send a second's worth at once). Token
/// names come from the token file, so the buckets are bounded.
final class RateLimiter: Sendable {
    private struct Bucket {
        var level: Double
        var updated: ContinuousClock.Instant
    }

    let perSecond: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    init(perSecond: Int) {
        precondition(perSecond >= 1)
        self.perSecond = perSecond
    }

    /// Nil if a request of `name` may go ahead now (it takes one from the bucket), else how
    /// long until one may.
    func admit(_ name: String, now: ContinuousClock.Instant = .now) -> Duration? {
        let rate = Double(perSecond)
        return buckets.withLock { buckets -> Duration? in
            var bucket = buckets[name] ?? Bucket(level: rate, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.level = min(rate, bucket.level + max(seconds, 0) * rate)
            bucket.updated = now
            defer { buckets[name] = bucket }
            guard bucket.level >= 1 else { return .seconds((1 - bucket.level) / rate) }
            bucket.level -= 1
            return nil
        }
    }
}
