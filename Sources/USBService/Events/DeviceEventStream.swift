import HTTPServer
import Synchronization
import USB

/// `GET /v1/events` as a streamed body: an ``EventFeed`` fed from the ``ChangeLog`` each time
/// the server asks for bytes. Idle, the connection is suspended until the next change (the
/// log wakes it) or the next keep-alive comment. Never ends by itself.
final class DeviceEventStream: HTTPBodyStream, Sendable {
    private let log: ChangeLog
    private let keepAlive: Duration
    /// Leases, claims and streams, when the client asked for them (`activity=true`).
    private let activity: ActivityLog?
    private struct State {
        var feed: EventFeed
        var keepAliveDue = false
        var follower: UInt64?
        var activityFollower: Int?
        var activityCursor: Int
        var timer: Task<Void, Never>?
    }
    private let state: Mutex<State>

    init(log: ChangeLog, feed: EventFeed, keepAlive: Duration, activity: ActivityLog? = nil) {
        self.log = log
        self.keepAlive = keepAlive
        self.activity = activity
        self.state = Mutex(State(feed: feed, activityCursor: activity?.latest ?? 0))
    }

    func start(wake: @escaping @Sendable () -> Void) {
        let follower = log.follow(wake)
        let activityFollower = activity?.follow(wake)
        let timer = Task { [weak self, keepAlive] in
            while !Task.isCancelled {
                try? await Task.sleep(for: keepAlive)
                guard let self, !Task.isCancelled else { return }
                self.state.withLock { $0.keepAliveDue = true }
                wake()
            }
        }
        state.withLock {
            $0.follower = follower
            $0.activityFollower = activityFollower
            $0.timer = timer
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTPStreamRead {
        state.withLock { state in
            if state.feed.pending.isEmpty {
                if let changes = log.changes(after: state.feed.cursor) {
                    state.feed.take(changes)
                } else {
                    let (latest, devices) = log.snapshot()
                    state.feed.resync(reason: "fell behind: changes were dropped", latest: latest, devices: devices)
                }
                if let activity {
                    let (entries, latest) = activity.entries(after: state.activityCursor)
                    state.activityCursor = latest
                    state.feed.take(activity: entries)
                }
            }
            if state.feed.pending.isEmpty && state.keepAliveDue { state.feed.keepAlive() }
            state.keepAliveDue = false
            let count = state.feed.drain(into: buffer)
            return count > 0 ? .bytes(count) : .wait
        }
    }

    func close() {
        let (follower, activityFollower, timer) = state.withLock { ($0.follower, $0.activityFollower, $0.timer) }
        timer?.cancel()
        if let follower { log.unfollow(follower) }
        if let activityFollower { activity?.unfollow(activityFollower) }
    }
}
