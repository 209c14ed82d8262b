import Glibc
import Testing

@testable import HTTPServer

/// The connection's and the socket writer's protocols, as values, without I/O.
@Suite struct ChunkedWritesTests {
    /// What a writer would put on the wire: every piece sent in sends of `step` bytes at most.
    static func wire(_ writes: inout ChunkedWrites, step: Int, done: inout [Int]) -> [UInt8] {
        var output: [UInt8] = []
        let iovecs = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 12)
        let headers = UnsafeMutableRawPointer.allocate(byteCount: 18 * 4, alignment: 8)
        defer {
            iovecs.deallocate()
            headers.deallocate()
        }
        while !writes.isEmpty {
            let count = writes.gather(into: iovecs, headers: headers)
            var budget = step
            var taken = 0
            for entry in iovecs[0..<count] where budget > 0 {
                let length = min(entry.iov_len, budget)
                output += UnsafeRawBufferPointer(start: entry.iov_base, count: length)
                budget -= length
                taken += length
            }
            writes.sent(taken) { done.append($0) }
        }
        return output
    }

    @Test(arguments: [1, 2, 3, 7, 100, 70_000, 1 << 20])
    func piecesGoOutFramedInOrderWhateverTheSendsTake(step: Int) {
        let pieces: [[UInt8]] = [Array(repeating: 0x41, count: 10), Array(0..<255), Array(repeating: 0x42, count: 65536), [0x43]]
        let storage = pieces.map { piece -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: piece.count, alignment: 1)
            buffer.copyBytes(from: piece)
            return buffer
        }
        defer { storage.forEach { $0.deallocate() } }
        var writes = ChunkedWrites(framing: .chunked)
        for (tag, buffer) in storage.enumerated() {
            let queued = writes.append(tag: tag, bytes: UnsafeRawPointer(buffer.baseAddress!), count: buffer.count)
            #expect(queued)
        }
        var done: [Int] = []
        let output = Self.wire(&writes, step: step, done: &done)
        var expected: [UInt8] = []
        for piece in pieces { expected += Array("\(String(piece.count, radix: 16))\r\n".utf8) + piece + [13, 10] }
        #expect(output == expected)
        #expect(done == [0, 1, 2, 3])
    }

    @Test func aPieceIsReportedOnlyOnceWhollySent() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        var writes = ChunkedWrites(framing: .chunked)
        _ = writes.append(tag: 7, bytes: UnsafeRawPointer(buffer.baseAddress!), count: 16)
        var done: [Int] = []
        writes.sent(4 + 16 + 1) { done.append($0) }  // "10\r\n", the data, and one byte of the CRLF
        #expect(done.isEmpty && writes.count == 1)
        writes.sent(1) { done.append($0) }
        #expect(done == [7] && writes.isEmpty)
    }

    @Test func rawPiecesHaveNoFramingAndEmptyOnesAreRefused() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 5, alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: Array("hello".utf8))
        var writes = ChunkedWrites(framing: .raw)
        let empty = writes.append(tag: 0, bytes: UnsafeRawPointer(buffer.baseAddress!), count: 0)
        #expect(!empty, "an empty chunk would end the body")
        _ = writes.append(tag: 1, bytes: UnsafeRawPointer(buffer.baseAddress!), count: 5)
        var done: [Int] = []
        #expect(Self.wire(&writes, step: 2, done: &done) == Array("hello".utf8))
        #expect(done == [1])
    }

    @Test func aClientGoneDropsWhatWaits() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        var writes = ChunkedWrites(framing: .chunked)
        for tag in 0..<3 { _ = writes.append(tag: tag, bytes: UnsafeRawPointer(buffer.baseAddress!), count: 8) }
        writes.sent(5) { _ in }
        let dropped = writes.discard()
        #expect(dropped == [0, 1, 2])
        #expect(writes.isEmpty)
    }
}

@Suite struct ExchangeMachineTests {
    let ok = HTTPResponse(status: 200)

    @Test func anAnswerBeforeTheCallbackReturnsIsQueuedWithoutSuspending() {
        var machine = ExchangeMachine(streamsBody: false, bodyLimit: 10)
        guard case .none = machine.headersArrived() else { Issue.record("a whole-body route waits for its body"); return }
        machine.wholeBodyPiece(UnsafeRawBufferPointer(start: nil, count: 0))
        guard case .start(let body) = machine.bodyComplete() else { Issue.record("starts"); return }
        #expect(body.isEmpty)
        guard case .none = machine.answered(ok) else { Issue.record("nothing to resume"); return }
        guard case .queue(let response) = machine.startedInline() else { Issue.record("queued at once"); return }
        #expect(response.status == 200 && machine.sentStatus == 200 && !machine.suspended)
    }

    @Test func aLaterAnswerResumesTheSuspendedConnection() {
        var machine = ExchangeMachine(streamsBody: false, bodyLimit: 10)
        _ = machine.bodyComplete()
        guard case .suspend = machine.startedInline() else { Issue.record("suspends"); return }
        #expect(machine.suspended)
        guard case .resume = machine.answered(ok) else { Issue.record("resumes"); return }
        guard case .none = machine.answered(HTTPResponse(status: 500)) else { Issue.record("once"); return }
        guard case .queue(let response) = machine.bodyComplete() else { Issue.record("queued after the resume"); return }
        #expect(response.status == 200)
    }

    @Test func aBodyOverTheLimitIsDroppedAndRemembered() {
        var machine = ExchangeMachine(streamsBody: false, bodyLimit: 4)
        let bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeBytes { machine.wholeBodyPiece($0) }
        bytes.withUnsafeBytes { machine.wholeBodyPiece($0) }
        #expect(machine.bodyTooLarge)
        guard case .refuse(.bodyTooLarge) = machine.bodyComplete() else { Issue.record("the owner answers 413"); return }
        machine.refused(status: 413)
        #expect(machine.sentStatus == 413)
    }

    @Test func aStreamedBodyIsHeldBackAndAResumeBeforeTheSuspendUndoesIt() {
        var machine = ExchangeMachine(streamsBody: true, bodyLimit: 0)
        guard case .start = machine.headersArrived() else { Issue.record("starts with the headers"); return }
        guard case .none = machine.startedInline() else { Issue.record("the body flows"); return }
        guard case .consume = machine.streamedBodyPiece(accepted: true) else { Issue.record("taken"); return }
        guard case .suspend = machine.streamedBodyPiece(accepted: false) else { Issue.record("held back"); return }
        guard case .resume = machine.wantResume() else { Issue.record("released"); return }
        // The handler reads between a refused offer and the suspend: the piece comes again at once.
        guard case .none = machine.wantResume() else { Issue.record("not suspended"); return }
        guard case .offerAgain = machine.streamedBodyPiece(accepted: false) else { Issue.record("undone"); return }
        #expect(!machine.suspended)
        let step1 = machine.streamedBodyEnded()
        let step2 = machine.streamedBodyEnded()
        #expect(step1 && !step2, "the handler hears of the end once")
        guard case .suspend = machine.streamedBodyComplete() else { Issue.record("waits for the answer"); return }
        guard case .resume = machine.answered(ok) else { Issue.record("answered"); return }
        guard case .queue = machine.streamedBodyComplete() else { Issue.record("queued"); return }
    }

    @Test func requestsAreRefusedFromTheirHeadBeforeAnyBodyIsRead() {
        var stopping = ExchangeMachine(streamsBody: true, bodyLimit: 10)
        guard case .refuse(.shuttingDown) = stopping.headersArrived(shuttingDown: true) else {
            Issue.record("the server stopping refuses first")
            return
        }
        var refusedWithBody = ExchangeMachine(streamsBody: false, bodyLimit: 10, refusedByRoute: true)
        guard case .refuse(.route) = refusedWithBody.headersArrived(hasBody: true) else {
            Issue.record("answered now: the body is never read")
            return
        }
        var refusedWithout = ExchangeMachine(streamsBody: false, bodyLimit: 10, refusedByRoute: true)
        guard case .none = refusedWithout.headersArrived() else { Issue.record("at the next call"); return }
        guard case .refuse(.route) = refusedWithout.bodyComplete() else { Issue.record("refused then"); return }
        var tooLong = ExchangeMachine(streamsBody: false, bodyLimit: 10)
        guard case .refuse(.bodyTooLarge) = tooLong.headersArrived(hasBody: true, declaredLength: 11) else {
            Issue.record("refused before any 100 Continue")
            return
        }
        var streamed = ExchangeMachine(streamsBody: true, bodyLimit: 10)
        guard case .start = streamed.headersArrived(hasBody: true, declaredLength: 1 << 30) else {
            Issue.record("a streamed body has no whole-body limit")
            return
        }
        var late = ExchangeMachine(streamsBody: false, bodyLimit: 10)
        _ = late.headersArrived(hasBody: true, declaredLength: 3)
        guard case .refuse(.shuttingDown) = late.bodyComplete(shuttingDown: true) else {
            Issue.record("a body read while the server began to stop: refused, never run")
            return
        }
        late.refused(status: 503)
        guard case .none = late.bodyComplete(shuttingDown: true) else { Issue.record("refused once"); return }
    }

    @Test func anEarlyAnswerToAnUploadDropsTheRestOfTheBody() {
        var machine = ExchangeMachine(streamsBody: true, bodyLimit: 0)
        _ = machine.headersArrived()
        _ = machine.answered(HTTPResponse(status: 400))
        #expect(!machine.wantsBody)
        guard case .consume = machine.streamedBodyPiece(accepted: false) else { Issue.record("dropped"); return }
        let step3 = machine.streamedBodyEnded()
        #expect(!step3)
        guard case .queue(let response) = machine.streamedBodyComplete() else { Issue.record("queued"); return }
        #expect(response.status == 400)
    }
}

/// A request body taken by a sink: what came before it attached goes first, a full sink holds
/// the client back until it has room, and it hears of the end once.
@Suite struct RequestBodySinkTests {
    final class Sink: HTTPBodySink, @unchecked Sendable {
        var room: Int
        var bytes: [UInt8] = []
        var ended = 0
        var failed = 0
        init(room: Int) { self.room = room }
        func take(_ data: UnsafeRawBufferPointer) -> Int {
            let count = min(room, data.count)
            bytes += data.prefix(count)
            room -= count
            return count
        }
        func bodyEnded() { ended += 1 }
        func bodyFailed() { failed += 1 }
    }

    final class Flag: @unchecked Sendable {
        var raised = 0
    }

    @Test func piecesBeforeTheSinkGoFirstThenTheRestStraightToIt() {
        let body = HTTPRequestBody()
        let early: [UInt8] = [1, 2, 3]
        let released = Flag()
        #expect(early.withUnsafeBytes { body.offer($0) { released.raised += 1 } } == 3)
        let sink = Sink(room: 100)
        body.attach(sink)
        #expect(sink.bytes == [1, 2, 3])
        let late: [UInt8] = [4, 5]
        #expect(late.withUnsafeBytes { body.offer($0) {} } == 2)
        body.finish()
        #expect(sink.bytes == [1, 2, 3, 4, 5] && sink.ended == 1 && body.received == 5)
        body.finish()
        #expect(sink.ended == 1, "once")
    }

    @Test func aFullSinkHoldsTheClientBackUntilItHasRoom() {
        let body = HTTPRequestBody()
        let sink = Sink(room: 4)
        body.attach(sink)
        let released = Flag()
        let data: [UInt8] = Array(0..<10)
        let taken = data.withUnsafeBytes { body.offer($0) { released.raised += 1 } }
        #expect(taken == 4 && released.raised == 0)
        sink.room = 100
        body.sinkHasRoom()
        #expect(released.raised == 1, "the client may send the rest")
        body.fail()
        #expect(sink.failed == 1 && sink.ended == 0)
    }

    /// A client that leaves while held back: the body lets go of what it would have called
    /// (which held the whole exchange, and through it the stream and its usbfs buffers).
    @Test func aFailedBodyLetsGoOfTheHeldBackClient() {
        let body = HTTPRequestBody()
        body.attach(Sink(room: 0))
        weak var weakFlag: Flag?
        do {
            let flag = Flag()
            weakFlag = flag
            let data: [UInt8] = [1, 2]
            #expect(data.withUnsafeBytes { body.offer($0) { flag.raised += 1 } } == 0)
        }
        #expect(weakFlag != nil, "held while the client is held back")
        body.fail()
        #expect(weakFlag == nil, "let go once the client is gone")
    }

    @Test func aSinkAttachedLateTakesWhatItCanAndTheRestWaits() {
        let body = HTTPRequestBody()
        let data: [UInt8] = Array(0..<10)
        _ = data.withUnsafeBytes { body.offer($0) {} }
        body.finish()
        let sink = Sink(room: 6)
        body.attach(sink)
        #expect(sink.bytes == Array(0..<6) && sink.ended == 0)
        sink.room = 100
        body.sinkHasRoom()
        #expect(sink.bytes == data && sink.ended == 1)
    }
}
