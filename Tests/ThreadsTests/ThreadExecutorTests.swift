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

    @Test func namedThreadsRunTheirBody() async {
        let ran = await withCheckedContinuation { continuation in
            NamedThread.start(name: "test-thread") { continuation.resume(returning: true) }
        }
        #expect(ran)
    }
}
