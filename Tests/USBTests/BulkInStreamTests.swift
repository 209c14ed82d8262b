import EventLoop
import Logging
import Synchronization
import Testing
import TestSupport
import USBFakes

@testable import USB

/// A ``BulkInStream`` over a scripted device, with a sink that sends at once (as the socket
/// writer does when the socket has room): the order of what the sink hears.
@Suite struct BulkInStreamTests {
    static let loop: EventLoop = try! EventLoop(name: "bulk-in-loop", logger: Logger(label: "test"))

    /// Reports each buffer sent before `send` returns, and writes down what it heard.
    final class ImmediateSink: InStreamSink, @unchecked Sendable {
        var stream: BulkInStream?
        var bytes: [UInt8] = []
        var ending: StreamEnding?
        var sendsAfterTheEnd = 0

        func send(_ bytes: UnsafeRawPointer, count: Int, tag: Int) {
            if ending != nil { sendsAfterTheEnd += 1 }
            self.bytes += UnsafeRawBufferPointer(start: bytes, count: count)
            stream?.sent(tag)
        }

        func end(_ ending: StreamEnding) { self.ending = ending }
    }

    static func onLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Three buffers came in before the sink attached, then the device went away: the first
    /// buffer, sent at once, is resubmitted and refused, which ends the stream. That end comes
    /// after the two other buffers, not between them (they used to be dropped by the writer,
    /// which takes nothing after the end: a flaky StreamRouteTests case).
    @Test func anEndAskedForWhileBuffersAreHandedOverComesAfterThem() async throws {
        let count = Atomic(0)
        let device = ScriptedDevice(loop: Self.loop) { urb in
            let index = count.wrappingAdd(1, ordering: .relaxed).oldValue
            return index < 3 ? .complete(data: Array(repeating: UInt8(index + 1), count: urb.length)) : .hold()
        }
        var options = BulkInStream.Options()
        options.transferSize = 64
        let stream = try await Self.onLoop { [options] in
            let stream = try BulkInStream(io: device, endpoint: 0x81, type: .bulk, options: options, loop: Self.loop)
            stream.start()
            return stream
        }
        #expect(await eventually { (try? await Self.onLoop { stream.statistics.chunks }) == 3 })
        let sink = ImmediateSink()
        try await Self.onLoop {
            sink.stream = stream
            device.unplug()
            stream.attach(sink)
        }
        #expect(sink.bytes == [UInt8](repeating: 1, count: 64) + [UInt8](repeating: 2, count: 64) + [UInt8](repeating: 3, count: 64))
        #expect(sink.sendsAfterTheEnd == 0)
        #expect(sink.ending == .refused(.noDevice))
        sink.stream = nil
    }
}
