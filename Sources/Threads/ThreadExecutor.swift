import Dispatch
import Glibc
import Synchronization

/// A serial executor that runs its jobs on one dedicated thread. Actors that make blocking
/// libusb calls use it, so the calls never occupy Swift's cooperative threads, and code
/// already on that thread can enter the actor with `assumeIsolated`.
///
/// It is a task executor too: a task that prefers it (`Task(executorPreference:)`) runs its
/// nonisolated code on this thread, so entering and leaving the actor that uses it costs no
/// thread switch (the server starts a device's requests this way).
public final class ThreadExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    /// A queued piece of work: a task's job, or a plain closure (``run(_:)``), cheaper than a
    /// task when code on another thread only needs to get onto this one.
    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private struct Queue {
        var work: [Work] = []
        /// The thread has ended (``stop()``); later work goes elsewhere.
        var finished = false
    }

    private let jobs = Mutex(Queue())
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

    /// Queues a job: an actor's (as its serial executor) or a task's that prefers this
    /// executor. Once the thread has ended, only a task's job can still come (the actor that
    /// stopped it is gone): it runs on Swift's global executor instead, so it is never lost.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let queued = jobs.withLock { queue -> Bool in
            guard !queue.finished else { return false }
            queue.work.append(.job(unowned))
            return true
        }
        if queued {
            available.signal()
        } else {
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        }
    }

    /// Runs `body` on this executor's thread, after the work already queued. Code there may
    /// enter the actor that uses this executor with `assumeIsolated`. Dropped once the thread
    /// has ended (nothing is left to enter then).
    public func run(_ body: @escaping @Sendable () -> Void) {
        let queued = jobs.withLock { queue -> Bool in
            guard !queue.finished else { return false }
            queue.work.append(.closure(body))
            return true
        }
        if queued { available.signal() }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
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

    /// Whether the thread has ended (after ``stop()``).
    var hasEnded: Bool { jobs.withLock { $0.finished } }

    private func runLoop() {
        // The thread holds its executor until stopped.
        while true {
            available.wait()
            let (next, finished) = jobs.withLock { queue -> (Work?, Bool) in
                if queue.work.isEmpty {
                    if stopRequested.load(ordering: .acquiring) { queue.finished = true }
                    return (nil, queue.finished)
                }
                return (queue.work.removeFirst(), false)
            }
            switch next {
            case .job(let job):
                // Whether the job is the actor's or a task's that prefers this executor, it
                // runs with both: this thread is the actor's, and the task's preference holds.
                job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            case .closure(let body): body()
            case nil:
                if finished { return }
            }
        }
    }
}
