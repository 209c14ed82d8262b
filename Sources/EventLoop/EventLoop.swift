import Dispatch
import Glibc
import LinuxSystem
import Logging
import Synchronization
import SystemPackage
import Threads

/// One thread that waits in epoll for every descriptor registered with it and runs the work
/// queued for it: plain closures, and the jobs of the actors and tasks that use it as their
/// executor. libmicrohttpd (in external epoll mode), libusb's descriptors and the sockets of
/// streamed responses are all served here, so that a request, its USB transfer and its answer
/// need no thread switch: the transfer's completion and the answer run on the thread that
/// parsed the request. Code that runs here must never block.
///
/// It is a serial executor (device actors run on it) and a task executor (the server's
/// request tasks prefer it). It is the daemon's one kind of thread with a queue: the server's
/// loop, each device's worker for its blocking libusb calls, the host's thread and the hot-plug
/// monitor's are all event loops (the last three wait in epoll for little or nothing).
public final class EventLoop: SerialExecutor, TaskExecutor, @unchecked Sendable {
    /// One registered descriptor; ``unwatch(_:)`` ends it.
    public struct Watch: Sendable, Hashable {
        fileprivate let token: UInt64
        public let descriptor: FileDescriptor
    }

    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private struct Queue {
        var work: [Work] = []
        var wake = WakeProtocol()
        /// The thread has ended: work goes elsewhere (jobs) or nowhere (closures).
        var finished = false
    }

    /// A source of deadlines that the loop keeps (libmicrohttpd's connection timeouts and its
    /// own "call me again at once").
    private struct DeadlineSource {
        let id: UInt64
        let next: @Sendable () -> Int?
        let expired: @Sendable () -> Void
    }

    private let logger: Logger
    private let epoll: Epoll
    private let wakeCounter: EventCounter
    private let queue = Mutex(Queue())
    private let handlers = Mutex<[UInt64: @Sendable (Epoll.Events) -> Void]>([:])
    private let deadlineSources = Mutex<[DeadlineSource]>([])
    private let afterWork = Mutex<[(id: UInt64, body: @Sendable () -> Void)]>([])
    private let nextToken = Atomic<UInt64>(1)
    private let threadID = Atomic<UInt>(0)
    private let stopRequested = Atomic<Bool>(false)
    private let ended = DispatchSemaphore(value: 0)
    private let onFailure: @Sendable (Errno) -> Void
    /// Loop-confined: the array the queue's work is swapped into, and whether work is running.
    private var spare: [Work] = []
    private var draining = false
    /// The token of the wake counter's registration.
    private static let wakeToken: UInt64 = 0

    /// Starts the loop on a new thread named `name`. `onFailure` runs on that thread if the
    /// loop stops for an error (epoll_wait failing), after it is logged.
    public init(name: String, logger: Logger, onFailure: @escaping @Sendable (Errno) -> Void = { _ in }) throws(Errno) {
        self.logger = logger
        self.onFailure = onFailure
        self.epoll = try Epoll.create()
        do {
            self.wakeCounter = try EventCounter.create()
        } catch {
            try? epoll.close()
            throw error
        }
        do {
            try epoll.add(wakeCounter.descriptor, events: .input, token: Self.wakeToken)
        } catch {
            try? wakeCounter.close()
            try? epoll.close()
            throw error
        }
        let started = DispatchSemaphore(value: 0)
        NamedThread.start(name: name) { [self] in
            threadID.store(UInt(pthread_self()), ordering: .releasing)
            started.signal()
            runLoop()
        }
        started.wait()
    }

    // MARK: Descriptors

    /// Calls `handler` on the loop's thread whenever `descriptor` has any of `events` (level
    /// triggered unless `.edgeTriggered`), until ``unwatch(_:)``.
    public func watch(
        _ descriptor: FileDescriptor, for events: Epoll.Events, _ handler: @escaping @Sendable (Epoll.Events) -> Void
    ) throws(Errno) -> Watch {
        let token = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = handler }
        do {
            try epoll.add(descriptor, events: events, token: token)
        } catch {
            handlers.withLock { _ = $0.removeValue(forKey: token) }
            throw error
        }
        return Watch(token: token, descriptor: descriptor)
    }

    /// New events for a watch (re-arming a one-shot one).
    public func change(_ watch: Watch, to events: Epoll.Events) throws(Errno) {
        try epoll.modify(watch.descriptor, events: events, token: watch.token)
    }

    /// Stops watching: the handler is not called again (even for events already waiting).
    public func unwatch(_ watch: Watch) {
        handlers.withLock { _ = $0.removeValue(forKey: watch.token) }
        do {
            try epoll.remove(watch.descriptor)
        } catch where error == .noSuchFileOrDirectory || error == .badFileDescriptor {
            // Closed already, which took it out of the set.
        } catch {
            logger.error("epoll_ctl(EPOLL_CTL_DEL) failed", metadata: ["error": "\(error)"])
        }
    }

    /// Asks `next` before each wait how many milliseconds may pass before `expired` must run
    /// (nil: no limit), and runs `expired` on the loop's thread once that time has passed.
    /// Returns an id for ``removeDeadlineSource(_:)``.
    public func addDeadlineSource(next: @escaping @Sendable () -> Int?, expired: @escaping @Sendable () -> Void) -> UInt64 {
        let id = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        deadlineSources.withLock { $0.append(DeadlineSource(id: id, next: next, expired: expired)) }
        // The loop asks every source before it waits: one added on the loop is asked anyway.
        if !inEventLoop { wakeUp() }
        return id
    }

    public func removeDeadlineSource(_ id: UInt64) {
        deadlineSources.withLock { $0.removeAll { $0.id == id } }
    }

    /// Runs `body` on the loop's thread after each round of queued work, before the loop waits
    /// again: for what the work may have made due at once (libmicrohttpd's processing of the
    /// connections a round of work resumed), without a trip through epoll. Returns an id for
    /// ``removeAfterWork(_:)``.
    public func addAfterWork(_ body: @escaping @Sendable () -> Void) -> UInt64 {
        let id = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        afterWork.withLock { $0.append((id, body)) }
        return id
    }

    public func removeAfterWork(_ id: UInt64) {
        afterWork.withLock { $0.removeAll { $0.id == id } }
    }

    /// Runs `body` on the loop's thread once, `milliseconds` from now (to the coarse clock, so
    /// a few milliseconds late at most): a one-shot deadline source.
    public func schedule(after milliseconds: Int, _ body: @escaping @Sendable () -> Void) {
        // Made on the loop, so that its id is known before the loop first looks at it.
        guard inEventLoop else {
            execute { [self] in schedule(after: milliseconds, body) }
            return
        }
        let due = CoarseClock.milliseconds() + Int64(milliseconds)
        let timer = OneShot()
        timer.id = addDeadlineSource(
            next: { Int(max(due - CoarseClock.milliseconds(), 0)) },
            expired: { [weak self] in
                guard let self, let id = timer.take() else { return }
                removeDeadlineSource(id)
                body()
            })
    }

    /// The id of a one-shot deadline source, taken once when it fires.
    private final class OneShot: @unchecked Sendable {
        private let lock = Mutex<UInt64?>(nil)
        var id: UInt64? {
            get { lock.withLock { $0 } }
            set { lock.withLock { $0 = newValue } }
        }
        func take() -> UInt64? { lock.withLock { $0.take() } }
    }

    // MARK: Work

    /// Runs `body` on the loop's thread, after the work already queued. Dropped once the loop
    /// has stopped: returns false then.
    @discardableResult
    public func execute(_ body: @escaping @Sendable () -> Void) -> Bool {
        add(.closure(body))
    }

    /// Whether the calling thread is the loop's.
    public var inEventLoop: Bool {
        pthread_equal(pthread_t(threadID.load(ordering: .acquiring)), pthread_self()) != 0
    }

    /// Traps unless called on the loop's thread: the check at the entry points of every type
    /// that lives on a loop (swift-nio's `preconditionInEventLoop`). One load and one
    /// `pthread_equal`, cheap enough for every call on the hot path.
    @inline(__always)
    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "called off the thread of its event loop", file: file, line: line)
    }

    /// Runs the work queued now (and what it queues), on the loop's thread: the server calls it
    /// inside libmicrohttpd's callback so that a request that needs nothing else is answered
    /// before the callback returns. Does nothing when work is running already (a caller
    /// inside it) or off the loop's thread.
    public func runPendingWork() {
        guard inEventLoop, !draining else { return }
        draining = true
        defer { draining = false }
        // Bounded, so that work that keeps queueing work cannot starve the descriptors.
        for _ in 0..<64 {
            // Swapped, not copied: the queue takes the spare array's capacity, and this one
            // takes the queue's work.
            var batch: [Work] = []
            swap(&batch, &spare)
            queue.withLock { swap(&$0.work, &batch) }
            if batch.isEmpty {
                spare = batch
                return
            }
            for work in batch {
                switch work {
                case .job(let job):
                    job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
                case .closure(let body):
                    body()
                }
            }
            batch.removeAll(keepingCapacity: true)
            spare = batch
        }
    }

    /// Ends the loop once the work queued now has run, and waits for its thread to leave
    /// (unless called on it, or `waitingForThread` is false: a device's worker stopped from its
    /// session's deinit may still be inside a blocking call). Watches still open are dropped
    /// without their handlers running; later work goes elsewhere (jobs) or nowhere (closures).
    public func stop(waitingForThread: Bool = true) {
        stopRequested.store(true, ordering: .releasing)
        wakeUp()
        if waitingForThread && !inEventLoop { ended.wait() }
    }

    /// Whether the loop's thread has ended (after ``stop(waitingForThread:)``).
    public var hasEnded: Bool { queue.withLock { $0.finished } }

    // MARK: Executor

    /// Queues a job: an actor's (as its serial executor) or a task's that prefers this
    /// executor. Once the loop has ended, a job runs on Swift's global executor instead, so
    /// that it is never lost.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if !add(.job(unowned)) { globalConcurrentExecutor.enqueue(ExecutorJob(unowned)) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor { UnownedTaskExecutor(ordinary: self) }

    /// Lets `assumeIsolated` succeed on the loop's thread.
    public func checkIsolated() {
        precondition(inEventLoop, "not on the thread of this EventLoop")
    }

    // MARK: The loop

    /// Queues work; false once the loop has ended. Work from another thread writes the wake
    /// counter, unless a write is pending already; work from the loop's own thread never does
    /// (the loop runs it before it waits again).
    private func add(_ work: Work) -> Bool {
        let onLoop = inEventLoop
        let (accepted, signal) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.finished else { return (false, false) }
            queue.work.append(work)
            return (true, !onLoop && queue.wake.queuedFromElsewhere())
        }
        if signal { wakeUp() }
        return accepted
    }

    private func wakeUp() {
        do {
            try wakeCounter.signal()
        } catch {
            logger.error("cannot wake the event loop: eventfd write failed", metadata: ["error": "\(error)"])
        }
    }

    private func runLoop() {
        var events = Epoll.EventBuffer(capacity: 64)
        var deadlines: [(deadline: Int64, expired: @Sendable () -> Void)] = []
        while true {
            runPendingWork()
            for (_, body) in afterWork.withLock({ $0 }) { body() }
            runPendingWork()
            let (pending, stop) = queue.withLock { queue -> (Bool, Bool) in
                let stop = stopRequested.load(ordering: .acquiring) && queue.work.isEmpty
                if stop { queue.finished = true }
                return (!queue.work.isEmpty, stop)
            }
            if stop { break }
            // The nearest deadline decides how long to wait (never, when work is waiting).
            deadlines.removeAll(keepingCapacity: true)
            var timeout: Int32 = -1
            let sources = deadlineSources.withLock { $0 }
            if !sources.isEmpty {
                let now = CoarseClock.milliseconds()
                for source in sources {
                    guard let milliseconds = source.next() else { continue }
                    let wait = Int32(clamping: max(milliseconds, 0))
                    deadlines.append((now + Int64(wait), source.expired))
                    timeout = timeout < 0 ? wait : min(timeout, wait)
                }
            }
            if pending { timeout = 0 }
            let count: Int
            do {
                count = try epoll.wait(into: &events, timeout: timeout)
            } catch {
                logger.critical("epoll_wait failed: the event loop stops", metadata: ["error": "\(error)"])
                onFailure(error)
                break
            }
            for index in 0..<count {
                let (what, token) = events[index]
                if token == Self.wakeToken {
                    do {
                        try wakeCounter.drain()
                    } catch {
                        logger.error("eventfd read failed", metadata: ["error": "\(error)"])
                    }
                    queue.withLock { $0.wake.drained() }
                    continue
                }
                handlers.withLock { $0[token] }?(what)
            }
            if !deadlines.isEmpty {
                let now = CoarseClock.milliseconds()
                for (deadline, expired) in deadlines where deadline <= now { expired() }
            }
        }
        handlers.withLock { $0.removeAll() }
        queue.withLock { $0.finished = true }
        try? wakeCounter.close()
        try? epoll.close()
        ended.signal()
    }
}

/// When a thread that queues work for the loop must write the loop's wake counter (an
/// eventfd): only when no write is pending, so that a burst of work costs one write. Kept with
/// the queue, under its lock.
///
/// The loop must drain the counter first and only then say so (``drained()``): the other way
/// round, a write between the two would be drained while "pending" stayed set, and no thread
/// would write again while the loop sleeps. Work queued between the drain and ``drained()``
/// is run before the loop waits again.
struct WakeProtocol {
    /// The counter was written and not yet drained.
    private(set) var pending = false

    /// Work was queued from another thread: whether it must write the counter.
    mutating func queuedFromElsewhere() -> Bool {
        guard !pending else { return false }
        pending = true
        return true
    }

    /// The loop has drained the counter.
    mutating func drained() { pending = false }
}
