import Testing

@testable import USB

/// Issue 24, class 4: a slow control request does not starve other clients' past their own
/// timeouts (``ControlQueueMachine``).
@Suite struct ControlQueueTests {
    typealias Machine = ControlQueueMachine

    @Test func oneAtATimeFirstComeFirstServed() {
        var queue = Machine(holdLimit: 5000)
        #expect(queue.arrive(.init(id: 1, client: "a", deadline: 1000), now: 0) == [.start(1)])
        #expect(queue.arrive(.init(id: 2, client: "b", deadline: 2000), now: 10).isEmpty)
        #expect(queue.arrive(.init(id: 3, client: "c", deadline: .max), now: 20).isEmpty)
        #expect(queue.holding == 1 && queue.waitingIDs == [2, 3])
        #expect(queue.leave(1, now: 100) == [.start(2)])
        #expect(queue.leave(2, now: 200) == [.start(3)])
        #expect(queue.leave(3, now: 300).isEmpty && queue.holding == nil)
    }

    @Test func aWaiterIsAnsweredWhenItsOwnTimeoutRunsOut() {
        var queue = Machine(holdLimit: 5000)
        _ = queue.arrive(.init(id: 1, client: "slow", deadline: 60_000), now: 0)
        _ = queue.arrive(.init(id: 2, client: "quick", deadline: 100), now: 0)
        #expect(queue.nextDeadline == 100)
        #expect(queue.tick(now: 99).isEmpty)
        #expect(queue.tick(now: 100) == [.expire(2)])
        #expect(queue.waitingIDs.isEmpty && queue.nextDeadline == nil, "no other client waits: the slow one may go on")
        // One whose time ran out while the holder held is not started after it.
        _ = queue.arrive(.init(id: 3, client: "quick", deadline: 200), now: 150)
        #expect(queue.leave(1, now: 250) == [.expire(3)])
    }

    @Test func aHolderPastTheLimitIsCutWhenAnotherClientWaits() {
        var queue = Machine(holdLimit: 5000)
        _ = queue.arrive(.init(id: 1, client: "slow", deadline: 600_000), now: 0)
        // Its own next request waits behind it without cutting it.
        _ = queue.arrive(.init(id: 2, client: "slow", deadline: 600_000), now: 1000)
        #expect(queue.nextDeadline == 600_000)
        #expect(queue.tick(now: 9000).isEmpty)
        // Another client's comes: the holder has held 9 s, past 5: cut, once.
        #expect(queue.arrive(.init(id: 3, client: "other", deadline: 20_000), now: 9000) == [.cut(1)])
        #expect(queue.tick(now: 9500).isEmpty)
        // Its cancellation comes back: the next in line starts (its own, first come).
        #expect(queue.leave(1, now: 9600) == [.start(2)])
        // The new holder is cut 5 s after it started if the other still waits.
        #expect(queue.nextDeadline == 14_600)
        #expect(queue.tick(now: 14_600) == [.cut(2)])
        #expect(queue.leave(2, now: 14_700) == [.start(3)])
    }

    @Test func aWaiterThatLeavesIsForgotten() {
        var queue = Machine(holdLimit: 5000)
        _ = queue.arrive(.init(id: 1, client: "a", deadline: .max), now: 0)
        _ = queue.arrive(.init(id: 2, client: "b", deadline: .max), now: 0)
        #expect(queue.leave(2, now: 10).isEmpty)
        #expect(queue.nextDeadline == nil, "nobody else waits: no cut due")
        #expect(queue.leave(1, now: 20).isEmpty && queue.holding == nil)
    }
}
