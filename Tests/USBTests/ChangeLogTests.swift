import Synchronization
import Testing

@testable import USB

@Suite struct ChangeLogTests {
    static let device = DeviceRoster.info0

    @Test func changesAreNumberedAndKeptUpToTheCapacity() throws {
        let log = ChangeLog(capacity: 3, instance: "abc")
        #expect(log.latest == 0 && log.changes(after: 0) == [])
        for _ in 0..<5 { log.append(.added, Self.device) }
        #expect(log.latest == 5)
        #expect(log.changes(after: 2)?.map(\.sequence) == [3, 4, 5])
        #expect(log.changes(after: 4)?.map(\.sequence) == [5])
        #expect(log.changes(after: 5) == [])
        #expect(log.changes(after: 1) == nil, "change 2 is no longer kept")
        #expect(log.changes(after: 9) == nil, "not of this log")
    }

    @Test func theSnapshotFollowsArrivalsAndRemovals() {
        let log = ChangeLog()
        log.append(.added, Self.device)
        #expect(log.snapshot().devices.map(\.id) == ["1-1"])
        log.append(.removed, Self.device)
        let (latest, devices) = log.snapshot()
        #expect(latest == 2 && devices.isEmpty)
    }

    @Test func followersAreWokenUntilTheyLeave() {
        let log = ChangeLog()
        let count = Atomic(0)
        let token = log.follow { count.add(1, ordering: .relaxed) }
        log.append(.added, Self.device)
        log.unfollow(token)
        log.append(.removed, Self.device)
        #expect(count.load(ordering: .relaxed) == 1)
    }

    @Test func waitingEndsAtAChangeOrAtTheDeadline() async {
        let log = ChangeLog()
        let start = ContinuousClock.now
        await log.waitForChange(after: 0, until: .now + .milliseconds(50))
        #expect(ContinuousClock.now - start >= .milliseconds(50))

        let waiter = Task { await log.waitForChange(after: 0, until: .now + .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(20))
        log.append(.added, Self.device)
        await waiter.value
        #expect(ContinuousClock.now - start < .seconds(10))

        // A change already there: no wait at all.
        await log.waitForChange(after: 0, until: .now + .seconds(30))
    }
}

extension DeviceRoster {
    /// A device "1-1" for tests that need any.
    static let info0: USBDeviceInfo = {
        var roster = DeviceRoster()
        _ = roster.update([HotplugTests.sysfs("1-1", address: 2)])
        return roster.devices[0]
    }()
}
