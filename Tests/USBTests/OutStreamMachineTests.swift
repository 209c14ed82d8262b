import Testing

@testable import USB

/// A stream to an OUT endpoint, as a value: the body cut into transfers, the client held back
/// while every buffer is in flight, the end.
@Suite struct OutStreamMachineTests {
    @Test func theBodyIsCutIntoFullTransfersInOrder() {
        var machine = OutStreamMachine(buffers: 2, transferSize: 100, packetSize: 64, zeroLengthPacket: false)
        let (taken, actions) = machine.take(150)
        #expect(taken == 150)
        #expect(actions.copies.map(\.count) == [100, 50] && actions.copies.map(\.from) == [0, 100])
        #expect(actions.submit.map(\.length) == [100], "a buffer goes out as soon as it is full")
        let last = machine.endOfBody()
        #expect(last.submit.map(\.length) == [50])
        let step1 = machine.completed(count: 100, status: .completed)
        #expect(step1.end == nil)
        let done = machine.completed(count: 50, status: .completed)
        #expect(done.end == .completed && machine.sent == 150 && machine.offered == 150)
    }

    @Test func theClientIsHeldBackUntilATransferComesBack() {
        var machine = OutStreamMachine(buffers: 2, transferSize: 10, packetSize: 8, zeroLengthPacket: false)
        let (taken, _) = machine.take(35)
        #expect(taken == 20, "two buffers' worth, then no room")
        let (none, nothing) = machine.take(15)
        #expect(none == 0 && nothing.submit.isEmpty)
        let back = machine.completed(count: 10, status: .completed)
        #expect(back.room)
        let (more, resumed) = machine.take(15)
        #expect(more == 10 && resumed.copies.first?.index == back.submit.first?.index ?? resumed.copies.first?.index)
    }

    @Test func aZeroLengthPacketFollowsDataThatFillsItsLastPacket() {
        var filling = OutStreamMachine(buffers: 2, transferSize: 128, packetSize: 64, zeroLengthPacket: true)
        _ = filling.take(64)
        let end = filling.endOfBody()
        #expect(end.submit.map(\.length) == [64, 0] && end.submit.last?.index == -1)
        var short = OutStreamMachine(buffers: 2, transferSize: 128, packetSize: 64, zeroLengthPacket: true)
        _ = short.take(70)
        #expect(short.endOfBody().submit.map(\.length) == [70])
    }

    @Test func aFailedTransferStopsTheStreamAndTheRestOfTheBodyIsDropped() {
        var machine = OutStreamMachine(buffers: 3, transferSize: 10, packetSize: 8, zeroLengthPacket: false)
        _ = machine.take(30)
        let failed = machine.completed(count: 4, status: .stall)
        #expect(failed.cancelInFlight && failed.end == nil, "the others come back first")
        _ = machine.completed(count: 0, status: .cancelled)
        let over = machine.completed(count: 0, status: .cancelled)
        #expect(over.end == .failed(.stall) && machine.sent == 4)
        let (dropped, actions) = machine.take(1000)
        #expect(dropped == 1000 && actions.copies.isEmpty && actions.submit.isEmpty)
    }

    @Test func aClientGoneCancelsWhatIsInFlight() {
        var machine = OutStreamMachine(buffers: 2, transferSize: 10, packetSize: 8, zeroLengthPacket: false)
        _ = machine.take(15)
        let stopped = machine.stop()
        #expect(stopped.cancelInFlight && stopped.end == nil)
        let over = machine.completed(count: 10, status: .completed)
        #expect(over.end == .cancelled)
        let idle = OutStreamMachine(buffers: 1, transferSize: 10, packetSize: 8, zeroLengthPacket: false)
        var copy = idle
        let step2 = copy.stop()
        #expect(step2.end == .cancelled, "nothing in flight: over at once")
    }

    @Test func aRefusedSubmissionEndsTheStream() {
        var machine = OutStreamMachine(buffers: 2, transferSize: 10, packetSize: 8, zeroLengthPacket: false)
        let (_, actions) = machine.take(20)
        #expect(actions.submit.count == 2)
        let refused = machine.refused(.noDevice, unsubmitted: 2)
        #expect(refused.end == .refused(.noDevice))
    }
}
