import Dispatch
import Glibc
@testable import EventLoop
import LinuxSystem
import Logging
import Synchronization
import Testing

/// The loop that serves descriptors and runs work: no work queued from another thread is
/// ever left waiting, watches call back on the loop, tasks and actors run on it.
@Suite struct EventLoopTests {
    let logger = Logger(label: "test")

    /// Ping-pong between threads and the loop, many times: each round trip puts the loop to
    /// sleep and wakes it from another thread. A lost wake-up leaves a round trip waiting.
    @Test func workFromOtherThreadsAlwaysWakesTheLoop() throws {
        let loop = try EventLoop(name: "test-loop", logger: logger)
        defer { loop.stop() }
        let lost = Atomic<Int>(0)
        let group = DispatchGroup()
        for _ in 0..<3 {
            DispatchQueue.global().async(group: group) {
                let done = DispatchSemaphore(value: 0)
                for _ in 0..<3000 {
                    loop.execute { done.signal() }
                    if done.wait(timeout: .now() + 5) == .timedOut { lost.add(1, ordering: .relaxed) }
                }
            }
        }
        group.wait()
        #expect(lost.load(ordering: .relaxed) == 0)
    }

    /// Bursts from several threads at once, without waiting: every piece of work runs, and the
    /// last ones too (a loop that went to sleep believing a wake-up was still pending would
    /// leave them queued).
    @Test func burstsFromManyThreadsAllRun() throws {
        let loop = try EventLoop(name: "test-burst", logger: logger)
        defer { loop.stop() }
        let ran = Atomic<Int>(0)
        let group = DispatchGroup()
        let threads = 4, each = 20_000
        for _ in 0..<threads {
            DispatchQueue.global().async(group: group) {
                for index in 0..<each {
                    loop.execute { ran.add(1, ordering: .relaxed) }
                    // Now and then let the loop go to sleep.
                    if index % 64 == 0 { usleep(50) }
                }
            }
        }
        group.wait()
        let deadline = ContinuousClock.now + .seconds(10)
        while ran.load(ordering: .relaxed) < threads * each && ContinuousClock.now < deadline { usleep(1000) }
        #expect(ran.load(ordering: .relaxed) == threads * each)
    }

    @Test func aWatchCallsBackOnTheLoopUntilUnwatched() throws {
        let loop = try EventLoop(name: "test-watch", logger: logger)
        defer { loop.stop() }
        let counter = try EventCounter.create()
        defer { try? counter.close() }
        let called = DispatchSemaphore(value: 0)
        let onLoop = Atomic<Bool>(false)
        let watch = try loop.watch(counter.descriptor, for: .input) { _ in
            onLoop.store(loop.inEventLoop, ordering: .relaxed)
            _ = try? counter.drain()
            called.signal()
        }
        try counter.signal()
        #expect(called.wait(timeout: .now() + 5) == .success && onLoop.load(ordering: .relaxed))
        loop.unwatch(watch)
        try counter.signal()
        #expect(called.wait(timeout: .now() + .milliseconds(200)) == .timedOut, "no call after unwatch")
    }

    @Test func aDeadlineSourceRunsWhenItsTimeComes() throws {
        let loop = try EventLoop(name: "test-deadline", logger: logger)
        defer { loop.stop() }
        let fired = DispatchSemaphore(value: 0)
        let due = Atomic<Bool>(true)
        let id = loop.addDeadlineSource(next: { due.load(ordering: .relaxed) ? 30 : nil }) {
            due.store(false, ordering: .relaxed)
            fired.signal()
        }
        #expect(fired.wait(timeout: .now() + 5) == .success)
        loop.removeDeadlineSource(id)
    }

    actor OnTheLoop {
        nonisolated let loop: EventLoop
        nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
        var count = 0
        init(loop: EventLoop) { self.loop = loop }
        func bump() -> Bool {
            count += 1
            return loop.inEventLoop
        }
    }

    @Test func tasksAndActorsRunOnTheLoop() async throws {
        let loop = try EventLoop(name: "test-exec", logger: logger)
        let actor = OnTheLoop(loop: loop)
        let task = Task(executorPreference: loop) { loop.inEventLoop }
        #expect(await task.value)
        #expect(await actor.bump())
        #expect(await actor.count == 1)
        loop.stop()
    }

    /// A device's worker: an actor's jobs from many tasks run on the loop's thread, in order,
    /// and a task that prefers the loop stays on it in and out of the actor.
    @Test func actorJobsFromManyTasksRunOnTheLoopsThread() async throws {
        let loop = try EventLoop(name: "test-worker", logger: logger)
        defer { loop.stop() }
        let actor = OnTheLoop(loop: loop)
        let onThread = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { await actor.bump() } }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(onThread)
        #expect(await actor.count == 200)
        let places = await Task(executorPreference: loop) { () -> [Bool] in
            let before = loop.inEventLoop
            let inside = await actor.bump()
            return [before, inside, loop.inEventLoop]
        }.value
        #expect(places == [true, true, true])
    }

    /// A session's deinit stops its worker without waiting (it may be inside a blocking call):
    /// the call ends, the thread leaves, and a task that still prefers the loop runs elsewhere.
    @Test func aLoopStoppedWithoutWaitingEndsAfterItsWorkAndTasksStillRun() async throws {
        let loop = try EventLoop(name: "test-stopped", logger: logger)
        let release = DispatchSemaphore(value: 0)
        let ran = Atomic(false)
        loop.execute {
            release.wait()  // a blocking libusb call
            ran.store(true, ordering: .relaxed)
        }
        loop.stop(waitingForThread: false)
        #expect(!loop.hasEnded, "returned while the call still runs")
        release.signal()
        let deadline = ContinuousClock.now + .seconds(10)
        while !loop.hasEnded && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(loop.hasEnded && ran.load(ordering: .relaxed))
        #expect(!loop.execute {}, "closures after the end are dropped")
        let answer = await Task(executorPreference: loop) { () -> Int in
            try? await Task.sleep(for: .milliseconds(1))
            return 42
        }.value
        #expect(answer == 42)
    }
}

/// The wake-up protocol between threads that queue work and the loop, step by step.
@Suite struct WakeProtocolTests {
    @Test func aBurstWritesTheCounterOnce() {
        var wake = WakeProtocol()
        let first = wake.queuedFromElsewhere()
        let second = wake.queuedFromElsewhere()
        let third = wake.queuedFromElsewhere()
        #expect(first && !second && !third)
        wake.drained()
        let afterDrain = wake.queuedFromElsewhere()
        #expect(afterDrain, "after a drain the next work writes again")
    }

    /// A thread queues work while the loop handles a wake-up (between its drain of the counter
    /// and saying so): its work is run before the loop sleeps, and the work after that writes
    /// the counter again, so the sleeping loop wakes.
    @Test func workQueuedWhileTheLoopDrainsIsNotLost() {
        var wake = WakeProtocol()
        var counter = 0
        if wake.queuedFromElsewhere() { counter += 1 }
        // The loop: drain (the counter to zero), then a writer, then drained().
        counter = 0
        let wroteInBetween = wake.queuedFromElsewhere()
        if wroteInBetween { counter += 1 }
        wake.drained()
        // The loop runs the queued work, then sleeps; the next work must wake it.
        let next = wake.queuedFromElsewhere()
        #expect(!wroteInBetween && next, "the sleeping loop is woken")
        #expect(counter == 0)
    }
}
