import Dispatch
import Glibc
import Synchronization

/// A serial executor that runs its jobs on one dedicated thread. Actors that make blocking
/// libusb calls use it, so the calls never occupy Swift's cooperative threads, and code
/// already on that thread can enter the actor with `assumeIsolated`.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)
    private let thread = Mutex<pthread_t?>(nil)
    private let name: String

    /// Starts the thread, named `name` (at most 15 characters show in `top`).
    public init(name: String) {
        self.name = String(name.prefix(15))
        let box = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        var handle = pthread_t()
        let started = pthread_create(
            &handle, &attributes,
            { argument in
                let executor = Unmanaged<ThreadExecutor>.fromOpaque(argument!).takeRetainedValue()
                executor.runLoop()
                return nil
            }, box.toOpaque())
        pthread_attr_destroy(&attributes)
        precondition(started == 0, "pthread_create failed: \(started)")
        pthread_detach(handle)
        thread.withLock { $0 = handle }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
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

    private func runLoop() {
        // pthread_setname_np is not imported (it needs _GNU_SOURCE); this is what it does.
        if let file = fopen("/proc/thread-self/comm", "w") {
            fputs(name, file)
            fclose(file)
        }
        // The loop keeps its executor alive for the life of the process.
        while true {
            available.wait()
            let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            job?.runSynchronously(on: asUnownedSerialExecutor())
        }
    }
}
