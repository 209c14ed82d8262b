import Testing

@testable import USB

/// A stream from an IN endpoint, as a value: what goes out, what goes back to the bus, when it ends.
@Suite struct InStreamMachineTests {
    func started(_ buffers: Int, maxBytes: Int? = nil) -> InStreamMachine {
        var machine = InStreamMachine(buffers: buffers, maxBytes: maxBytes)
        for index in 0..<buffers { machine.submitted(index) }
        return machine
    }

    @Test func aSinkGetsEachBufferAsItCompletesAndItGoesBackOnceSent() {
        var machine = started(2)
        let step1 = machine.attach()
        #expect(step1.deliver.isEmpty)
        let first = machine.completed(0, count: 512, status: .completed)
        #expect(first.deliver.map(\.index) == [0] && first.deliver.map(\.count) == [512] && first.submit.isEmpty)
        let step2 = machine.sent(0)
        #expect(step2.submit == [0], "back to the bus the moment it is out")
        let step3 = machine.completed(1, count: 0, status: .completed)
        #expect(step3.submit == [1], "a zero-length packet goes straight back")
        #expect(machine.delivered == 512 && machine.resubmissions == 2)
    }

    @Test func buffersThatCompletedBeforeTheSinkGoOutWhenItAttaches() {
        var machine = started(3)
        let step4 = machine.completed(0, count: 10, status: .completed)
        #expect(step4.wake)
        _ = machine.completed(1, count: 20, status: .completed)
        let attached = machine.attach()
        #expect(attached.deliver.map(\.index) == [0, 1] && attached.deliver.map(\.count) == [10, 20])
    }

    @Test func theLimitClipsTheLastBufferAndEndsCleanly() {
        var machine = started(2, maxBytes: 700)
        _ = machine.attach()
        _ = machine.completed(0, count: 512, status: .completed)
        let last = machine.completed(1, count: 512, status: .completed)
        #expect(last.deliver.map(\.count) == [188] && last.cancelInFlight && last.end == .limit)
        let step5 = machine.sent(0)
        let step6 = machine.sent(1)
        #expect(step5.submit.isEmpty && step6.submit.isEmpty, "nothing more goes to the bus")
    }

    @Test func aFailedTransferDeliversWhatItBroughtThenEnds() {
        var machine = started(2)
        _ = machine.attach()
        let failed = machine.completed(0, count: 64, status: .stall)
        #expect(failed.deliver.map(\.count) == [64] && failed.cancelInFlight && failed.end == .failed(.stall))
        let step7 = machine.completed(1, count: 512, status: .cancelled)
        #expect(step7.deliver.isEmpty, "after the end nothing goes out")
    }

    @Test func aStopEndsOnceAndCancels() {
        var machine = started(2)
        _ = machine.attach()
        let stopped = machine.stop(.cancelled)
        #expect(stopped.cancelInFlight && stopped.end == .cancelled)
        let step8 = machine.stop(.finished)
        #expect(step8.end == nil, "the first ending counts, reported once")
        #expect(machine.ending == .cancelled)
    }

    @Test func aReaderCopiesInOrderAndBuffersGoBackOnceWhollyRead() {
        var machine = started(2, maxBytes: 1000)
        _ = machine.completed(0, count: 600, status: .completed)
        _ = machine.completed(1, count: 600, status: .completed)
        let step9 = machine.read(max: 400)
        #expect(step9 == .copy(index: 0, offset: 0, count: 400))
        let step10 = machine.copied(count: 400)
        #expect(step10.submit.isEmpty)
        let step11 = machine.read(max: 400)
        #expect(step11 == .copy(index: 0, offset: 400, count: 200))
        let step12 = machine.copied(count: 200)
        #expect(step12.submit == [0])
        // Only 400 of the second buffer fit under the limit.
        let step13 = machine.read(max: 1000)
        #expect(step13 == .copy(index: 1, offset: 0, count: 400))
        let last = machine.copied(count: 400)
        #expect(last.submit.isEmpty && last.cancelInFlight)
        let step14 = machine.read(max: 1000)
        #expect(step14 == .end(.limit))
    }

    @Test func aReaderSeesWhatCameBeforeAFailure() {
        var machine = started(1)
        _ = machine.completed(0, count: 100, status: .noDevice)
        let step15 = machine.read(max: 1000)
        #expect(step15 == .copy(index: 0, offset: 0, count: 100))
        _ = machine.copied(count: 100)
        let step16 = machine.read(max: 1000)
        #expect(step16 == .end(.failed(.noDevice)))
    }
}
