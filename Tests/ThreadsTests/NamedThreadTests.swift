import Testing

@testable import Threads

@Suite struct NamedThreadTests {
    @Test func namedThreadsRunTheirBody() async {
        let ran = await withCheckedContinuation { continuation in
            NamedThread.start(name: "test-thread") { continuation.resume(returning: true) }
        }
        #expect(ran)
    }
}
