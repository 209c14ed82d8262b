import Dispatch
import Glibc
import Synchronization

/// A serial executor that runs its jobs on one dedicated thread. Actors that make blocking
/// libusb calls use it, so the calls never occupy Swift's cooperative threads, and code
/// already on that thread can enter the actor with `assumeIsolated`.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    /// A queued piece of work: a task's job, or a plain closure (``run(_:)``), cheaper than a
    /// task when code on another thread only needs to get onto this one.
    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private let jobs = Mutex<[Work]>([])
    private let available = DispatchSemaphore(value: 0)
    private let thread = Mutex<pthread_t?>(nil)
    private let stopRequested = Atomic<Bool>(false)
    private let started = DispatchSemaphore(value: 0)

    /// Starts the thread, named `name` (at most 15 characters show in `top`).
    public init(name: String) {
        NamedThread.start(name: name) { [self] in
            thread.withLock { $0 = pthread_self() }
            started.signal()
            runLoop()
        }
        started.wait()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(.job(unowned)) }
        available.signal()
    }

    /// Runs `body` on this executor's thread, after the work already queued. Code there may
    /// enter the actor that uses this executor with `assumeIsolated`.
    public func run(_ body: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(.closure(body)) }
        available.signal()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets `assumeIsolated` succeed on this executor's own thread.
    public func checkIsolated() {
        precondition(isCurrent, "not on the thread of this ThreadExecutor")
    }

    /// Whether the calling thread is this executor's thread.
    public var isCurrent: Bool {
        guard let own = thread.withLock({ $0 }) else { return false }
        return pthread_equal(own, pthread_self()) != 0
    }

    /// Ends the thread once the jobs already queued have run. Call it only when nothing can
    /// enqueue any more (e.g. from the deinit of the one actor that uses this executor).
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        available.signal()
    }

    private func runLoop() {
        // The thread holds its executor until stopped.
        while true {
            available.wait()
            switch jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            case .job(let job): job.runSynchronously(on: asUnownedSerialExecutor())
            case .closure(let body): body()
            case nil:
                if stopRequested.load(ordering: .acquiring) { return }
            }
        }
    }
}
