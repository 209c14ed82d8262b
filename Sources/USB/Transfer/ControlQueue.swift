import EventLoop
import LinuxSystem

/// A device's control requests, one on endpoint 0 at a time (``ControlQueueMachine``): lives on
/// the loop, where the device session and the URB channels that use it run; its timer is a
/// deadline source of the loop.
public final class ControlQueue: @unchecked Sendable {
    /// What the queue tells a request, with its ticket (which ``enter(client:timeout:_:)`` may
    /// not have returned yet: a request that finds endpoint 0 free starts at once).
    public struct Calls {
        /// Endpoint 0 is its: submit now.
        public var start: (UInt64) -> Void
        /// Its timeout ran out while it waited: nothing was sent. It has left the queue.
        public var expired: (UInt64) -> Void
        /// It held endpoint 0 past the limit while another client waited: cancel it.
        public var cut: (UInt64) -> Void

        public init(
            start: @escaping (UInt64) -> Void, expired: @escaping (UInt64) -> Void, cut: @escaping (UInt64) -> Void
        ) {
            self.start = start
            self.expired = expired
            self.cut = cut
        }
    }

    private let loop: EventLoop
    private var machine: ControlQueueMachine
    private var calls: [UInt64: Calls] = [:]
    private var nextID: UInt64 = 1
    private var source: UInt64?

    /// `holdLimit`: milliseconds a request may keep endpoint 0 while another client waits.
    public init(loop: EventLoop, holdLimit: Int) {
        self.loop = loop
        self.machine = ControlQueueMachine(holdLimit: Int64(holdLimit))
    }

    deinit {
        if let source { loop.removeDeadlineSource(source) }
    }

    /// Queues a request of `client` whose timeout is `timeout` ms (0: none); `calls` hear when
    /// it starts, expires or is cut. Its ticket, for ``leave(_:)`` once it ended or left.
    public func enter(client: String, timeout: UInt32, _ calls: Calls) -> UInt64 {
        loop.preconditionInEventLoop()
        let id = nextID
        nextID += 1
        self.calls[id] = calls
        let now = CoarseClock.milliseconds()
        let deadline = timeout == 0 ? Int64.max : now + Int64(timeout)
        perform(machine.arrive(.init(id: id, client: client, deadline: deadline), now: now))
        return id
    }

    /// Request `ticket` ended (completed, failed, cancelled) or left the queue.
    public func leave(_ ticket: UInt64) {
        loop.preconditionInEventLoop()
        guard calls.removeValue(forKey: ticket) != nil else { return }
        perform(machine.leave(ticket, now: CoarseClock.milliseconds()))
    }

    private func perform(_ actions: [ControlQueueMachine.Action]) {
        for action in actions {
            switch action {
            case .start(let id): calls[id]?.start(id)
            case .expire(let id): calls.removeValue(forKey: id)?.expired(id)
            case .cut(let id): calls[id]?.cut(id)
            }
        }
        if machine.nextDeadline != nil, source == nil {
            source = loop.addDeadlineSource(
                next: { [unowned(unsafe) self] in
                    self.machine.nextDeadline.map { Int(max($0 - CoarseClock.milliseconds(), 0)) }
                },
                expired: { [unowned(unsafe) self] in
                    self.perform(self.machine.tick(now: CoarseClock.milliseconds()))
                })
        }
    }
}
