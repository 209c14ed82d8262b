import Synchronization

/// What changes on a device besides its coming and going: a lease taken or ended, an interface
/// claimed or released, a stream started or ended (and, while streams run, their throughput
/// about once a second). Shown as `activity` events by
/// `GET /v1/events?activity=true` (the bench page follows them instead of asking again and
/// again). Each entry names the device and what changed; a follower asks again for what it
/// shows (the leases, the device). The last ``kept`` entries are kept: a follower that falls
/// further behind is told to ask for everything (kind `all`).
final class ActivityLog: Sendable {
    enum Kind: String, Encodable, Sendable {
        case lease, claim, stream
        /// Entries were dropped before a follower read them: ask again for everything.
        case all
    }
    struct Entry: Encodable, Sendable {
        var kind: Kind
        var device: String
        var sequence: Int
        /// Streams open on the device after the change (kind `stream`).
        var streams: Int?
        /// While streams run, about once a second: the bytes a second they move (kind `stream`).
        var bytesPerSecond: Int?
    }
    static let kept = 256

    private struct State {
        var latest = 0
        var entries: [Entry] = []
        var followers: [Int: @Sendable () -> Void] = [:]
        var nextFollower = 0
    }
    private let state = Mutex(State())

    /// Records that `kind` changed on `device` and wakes every follower.
    func note(_ kind: Kind, device: String, streams: Int? = nil, bytesPerSecond: Int? = nil) {
        let followers = state.withLock { state in
            state.latest += 1
            state.entries.append(
                Entry(kind: kind, device: device, sequence: state.latest, streams: streams, bytesPerSecond: bytesPerSecond))
            if state.entries.count > Self.kept { state.entries.removeFirst(state.entries.count - Self.kept) }
            return Array(state.followers.values)
        }
        for wake in followers { wake() }
    }

    /// The newest entry's sequence (0: none yet).
    var latest: Int { state.withLock { $0.latest } }

    /// The entries after `sequence`, and the newest sequence; one `all` entry when some were dropped.
    func entries(after sequence: Int) -> (entries: [Entry], latest: Int) {
        state.withLock { state in
            guard state.latest > sequence else { return ([], state.latest) }
            guard let first = state.entries.first, first.sequence <= sequence + 1 else {
                return ([Entry(kind: .all, device: "", sequence: state.latest)], state.latest)
            }
            return (Array(state.entries.drop { $0.sequence <= sequence }), state.latest)
        }
    }

    /// Calls `wake` after each new entry until ``unfollow(_:)``.
    func follow(_ wake: @escaping @Sendable () -> Void) -> Int {
        state.withLock { state in
            state.nextFollower += 1
            state.followers[state.nextFollower] = wake
            return state.nextFollower
        }
    }

    func unfollow(_ follower: Int) {
        _ = state.withLock { $0.followers.removeValue(forKey: follower) }
    }
}
