import Testing

@testable import Threads

@Suite struct ThreadExecutorTests {
    actor OnItsThread {
        let executor = ThreadExecutor(name: "test-executor")
        nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
        var count = 0

        func increment() -> Bool {
            count += 1
            return executor.isCurrent
        }
    }

    @Test func actorJobsRunOnTheDedicatedThreadInOrder() async {
        let actor = OnItsThread()
        let onThread = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { await actor.increment() } }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(onThread)
        #expect(await actor.count == 200)
        #expect(!actor.executor.isCurrent)
    }

    @Test func aTaskThatPrefersItRunsOnItsThreadInAndOutOfTheActor() async {
        let actor = OnItsThread()
        let executor = actor.executor
        let places = await Task(executorPreference: executor) { () -> [Bool] in
            let before = executor.isCurrent
            let inside = await actor.increment()
            return [before, inside, executor.isCurrent]
        }.value
        #expect(places == [true, true, true])
    }

    @Test func aTaskThatPrefersAStoppedExecutorStillRuns() async throws {
        let executor = ThreadExecutor(name: "test-stopped")
        executor.stop()
        let deadline = ContinuousClock.now + .seconds(5)
        while !executor.hasEnded && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(executor.hasEnded)
        let answer = await Task(executorPreference: executor) { () -> Int in
            try? await Task.sleep(for: .milliseconds(1))
            return 42
        }.value
        #expect(answer == 42)
    }

    @Test func namedThreadsRunTheirBody() async {
        let ran = await withCheckedContinuation { continuation in
            NamedThread.start(name: "test-thread") { continuation.resume(returning: true) }
        }
        #expect(ran)
    }
}
