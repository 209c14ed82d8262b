import Glibc
import Synchronization

/// The last device changes, in order, for clients that follow them (events) or wait for one,
/// and the devices they leave present. Keeps the newest `capacity`; a follower that fell
/// further behind is told so (nil from ``changes(after:)``) and starts again from a
/// ``snapshot()``. Thread-safe.
public final class ChangeLog: Sendable {
    /// Names this daemon run, so that a sequence number from an earlier run is not taken
    /// for one of this run.
    public let instance: String
    public let capacity: Int

    private struct State {
        var entries: [DeviceChange] = []
        var latest: UInt64 = 0
        var present: [String: USBDeviceInfo] = [:]
        var followers: [UInt64: @Sendable () -> Void] = [:]
        var nextToken: UInt64 = 1
    }
    private let state = Mutex(State())

    public init(capacity: Int = 1024, instance: String? = nil) {
        self.capacity = capacity
        self.instance = instance ?? Self.randomInstance()
    }

    /// The sequence number of the newest change (0 before the first).
    public var latest: UInt64 { state.withLock { $0.latest } }

    /// Records a change and wakes every follower.
    @discardableResult
    public func append(_ kind: DeviceChange.Kind, _ device: USBDeviceInfo) -> DeviceChange {
        let (change, wakes) = state.withLock { state in
            state.latest += 1
            let change = DeviceChange(sequence: state.latest, kind: kind, device: device, time: DeviceChange.now())
            state.entries.append(change)
            state.present[device.id] = kind == .added ? device : nil
            if state.entries.count > capacity { state.entries.removeFirst(state.entries.count - capacity) }
            return (change, Array(state.followers.values))
        }
        for wake in wakes { wake() }
        return change
    }

    /// The changes after `sequence`, oldest first; nil when some of them are no longer kept
    /// (or `sequence` is not of this log).
    public func changes(after sequence: UInt64) -> [DeviceChange]? {
        state.withLock { state in
            guard sequence <= state.latest else { return nil }
            guard let first = state.entries.first else { return [] }
            guard sequence + 1 >= first.sequence else { return nil }
            return Array(state.entries.drop { $0.sequence <= sequence })
        }
    }

    /// The devices present after change number `latest`, in id order, read together.
    public func snapshot() -> (latest: UInt64, devices: [USBDeviceInfo]) {
        state.withLock { state in
            (state.latest, state.present.values.sorted { $0.id < $1.id })
        }
    }

    /// Returns once there is a change after `sequence`, at `deadline`, or when the task is
    /// cancelled, whichever comes first.
    public func waitForChange(after sequence: UInt64, until deadline: ContinuousClock.Instant) async {
        let (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let token = follow { continuation.yield() }
        defer {
            unfollow(token)
            continuation.finish()
        }
        guard latest <= sequence else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals { return }
            }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Calls `wake` (on the appending thread, so briefly) after every change until
    /// ``unfollow(_:)``.
    public func follow(_ wake: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { state in
            let token = state.nextToken
            state.nextToken += 1
            state.followers[token] = wake
            return token
        }
    }

    public func unfollow(_ token: UInt64) {
        _ = state.withLock { $0.followers.removeValue(forKey: token) }
    }

    private static func randomInstance() -> String {
        let value = UInt32.random(in: 0x1000_0000...UInt32.max)
        return String(value, radix: 16)
    }
}
