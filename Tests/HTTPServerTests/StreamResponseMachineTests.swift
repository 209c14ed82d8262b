import Testing

@testable import HTTPServer

/// libmicrohttpd's one trap: a resume of a connection that is not suspended is never made; it
/// undoes the next suspend instead.
@Suite struct SuspendLatchTests {
    @Test func aResumeAnswersTheSuspendBeforeIt() {
        var latch = SuspendLatch()
        let suspend = latch.suspend()
        #expect(suspend && latch.suspended)
        let resume = latch.resume()
        #expect(resume && !latch.suspended)
        #expect(!latch.resumeWanted)
    }

    @Test func aResumeBeforeTheSuspendUndoesItOnce() {
        var latch = SuspendLatch()
        let early = latch.resume()
        #expect(!early, "nothing to resume: never MHD_resume_connection")
        #expect(latch.resumeWanted)
        let again = latch.resume()
        #expect(!again, "two wakes are one")
        let skipped = latch.suspend()
        #expect(!skipped, "the suspend is skipped")
        #expect(!latch.suspended && !latch.resumeWanted)
        let next = latch.suspend()
        #expect(next, "the next one is made")
    }
}

/// A streamed response's life: the mode is decided once, at the first read; a read body
/// suspends while the stream waits and resumes when it wakes; the server stopping and the client
/// hanging up end it at the next read; a directly written body ends as its writer ended it.
@Suite struct StreamResponseMachineTests {
    @Test func aStreamThatCanWriteTakesTheSocketAtTheFirstReadOnly() {
        var machine = StreamResponseMachine()
        guard case .takeOverSocket = machine.read(canWriteDirectly: true) else { Issue.record("taken over"); return }
        let woken = machine.woken()
        #expect(!woken, "a written body's connection stays suspended until its writer ends")
        guard case .endAsWritten(nil) = machine.read(canWriteDirectly: true) else { Issue.record("never said"); return }
        machine.directEnded(.end(trailers: ["X-Done": "1"]))
        guard case .endAsWritten(.end(let trailers)?) = machine.read(canWriteDirectly: true) else {
            Issue.record("ends as written")
            return
        }
        #expect(trailers["X-Done"] == "1")
    }

    @Test func aReadBodySuspendsWhileTheStreamWaitsAndResumesWhenItWakes() {
        var machine = StreamResponseMachine()
        guard case .readStream = machine.read(canWriteDirectly: false) else { Issue.record("read"); return }
        let waits = machine.streamWaits()
        #expect(waits && machine.suspended)
        let woken = machine.woken()
        #expect(woken && !machine.suspended)
        guard case .readStream = machine.read(canWriteDirectly: true) else { Issue.record("decided once"); return }
        // A wake between the stream's "wait" and the suspend: read again at once.
        let early = machine.woken()
        #expect(!early)
        let waitsAgain = machine.streamWaits()
        #expect(!waitsAgain && !machine.suspended)
    }

    @Test func aClientThatHangsUpWhileSuspendedEndsTheBodyAtTheNextRead() {
        var machine = StreamResponseMachine()
        _ = machine.read(canWriteDirectly: false)
        _ = machine.streamWaits()
        let resume = machine.clientHungUp()
        #expect(resume, "resumed, so that libmicrohttpd reads and closes")
        guard case .cut(let reason) = machine.read(canWriteDirectly: false) else { Issue.record("cut"); return }
        #expect(reason == "client hung up")
    }

    @Test func theServerStoppingEndsAReadBodyAndAWrittenOnesWriter() {
        var reading = StreamResponseMachine()
        _ = reading.read(canWriteDirectly: false)
        _ = reading.streamWaits()
        guard case .resume = reading.stop() else { Issue.record("resumed"); return }
        guard case .cut(let reason) = reading.read(canWriteDirectly: false) else { Issue.record("cut"); return }
        #expect(reason == "server stopping")

        var notSuspended = StreamResponseMachine()
        _ = notSuspended.read(canWriteDirectly: false)
        guard case .none = notSuspended.stop() else { Issue.record("nothing to resume"); return }
        let waits = notSuspended.streamWaits()
        #expect(!waits, "the stop's wake undoes the next suspend")

        var writing = StreamResponseMachine()
        _ = writing.read(canWriteDirectly: true)
        guard case .endWriter = writing.stop() else { Issue.record("the writer ends it"); return }
    }
}
