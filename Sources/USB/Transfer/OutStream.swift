import CLibUSB
import EventLoop
import Logging
import Synchronization

/// A request body streamed to a bulk or interrupt OUT endpoint as it arrives: the server hands
/// over each piece of the body on the event loop (``take(_:)``), which is copied straight into
/// the buffer of the next transfer (usbfs memory where the kernel allows it: the URB's data is
/// then not copied again into the kernel) and submitted as soon as that buffer is full, with
/// up to `transfers` transfers in flight. When every buffer is in flight the client is held
/// back (``take(_:)`` takes less than offered) until a transfer comes back (`onRoom`). No task,
/// no thread switch per piece or per transfer: the pieces, the submissions and the completions
/// all happen on the loop, which is the device actor's executor. ``OutStreamMachine`` decides;
/// this class makes the calls.
public final class OutStream: @unchecked Sendable {
    /// How a stream to the device went: the outcome, the bytes the device took, and the bytes
    /// the body gave.
    public struct Outcome: Sendable, Equatable {
        public var result: TransferResult
        public var offered: Int
        /// The stream was cut or the client went away (not a transfer's status).
        public var cancelled: Bool
    }

    private struct State {
        var machine: OutStreamMachine
        var onRoom: (@Sendable () -> Void)?
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    public let endpoint: UInt8
    public let zeroCopy: Bool
    private let loop: EventLoop
    private let budget: UsbfsBudget
    private let reserved: Int
    private let logger: Logger
    private var transfers: [Transfer] = []
    /// The zero-length packet that ends data filling its last packet, when asked for.
    private var zeroLengthTransfer: Transfer?
    private let buffers: TransferBuffers
    private let state: Mutex<State>

    init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, transfers count: Int, transferSize: Int,
        packetSize: Int, zeroLengthPacket: Bool, timeout: UInt32, loop: EventLoop, budget: UsbfsBudget = .unlimited,
        logger: Logger
    ) throws {
        try budget.reserve(count * transferSize)
        self.budget = budget
        self.reserved = count * transferSize
        self.endpoint = endpoint
        self.loop = loop
        self.logger = logger
        let buffers = TransferBuffers(handle: handle, count: count, size: transferSize)
        self.buffers = buffers
        self.zeroCopy = buffers.zeroCopy
        self.state = Mutex(
            State(
                machine: OutStreamMachine(
                    buffers: count, transferSize: transferSize, packetSize: packetSize,
                    zeroLengthPacket: zeroLengthPacket)))
        do {
            for index in 0..<count {
                transfers.append(
                    try Transfer(
                        handle: handle, endpoint: endpoint, type: type, length: transferSize, timeout: timeout,
                        buffer: UnsafeMutableRawBufferPointer(start: buffers.pointers[index], count: transferSize),
                        completion: { [unowned(unsafe) self] transfer in self.ended(transfer) }))
            }
            if zeroLengthPacket {
                zeroLengthTransfer = try Transfer(
                    handle: handle, endpoint: endpoint, type: type, length: 0, timeout: timeout,
                    completion: { [unowned(unsafe) self] transfer in self.ended(transfer) })
            }
        } catch {
            transfers = []
            buffers.free()
            budget.release(count * transferSize)
            throw error
        }
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: zeroCopy)
    }

    deinit {
        USBMetrics.streamClosed(endpoint: endpoint)
        transfers = []
        zeroLengthTransfer = nil
        buffers.free()
        budget.release(reserved)
    }

    /// Called (on the loop) when a client held back by ``take(_:)`` may send more.
    public func onRoom(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.onRoom = handler }
    }

    /// The next piece of the body, on the loop: copies what fits into the transfers' buffers,
    /// submits every buffer it fills; how many bytes it took (fewer than offered: hold the
    /// client back until `onRoom`).
    public func take(_ bytes: UnsafeRawBufferPointer) -> Int {
        let (taken, actions) = state.withLock { $0.machine.take(bytes.count) }
        for copy in actions.copies {
            (buffers.pointers[copy.index] + copy.offset).update(
                from: bytes.baseAddress!.advanced(by: copy.from).assumingMemoryBound(to: UInt8.self), count: copy.count)
        }
        perform(actions)
        return taken
    }

    /// The whole body is in: the rest goes out, then the stream ends.
    public func endOfBody() {
        onLoop { [self] in perform(state.withLock { $0.machine.endOfBody() }) }
    }

    /// The client went away, or the stream is cut (a lease, the device closed): nothing more
    /// goes out, the transfers in flight are cancelled.
    public func cancel() {
        onLoop { [self] in perform(state.withLock { $0.machine.stop() }) }
    }

    /// Waits for the end of the stream.
    public func outcome() async -> Outcome {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Outcome? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    private func perform(_ actions: OutStreamMachine.Actions) {
        if actions.cancelInFlight {
            for transfer in transfers { transfer.cancel() }
            zeroLengthTransfer?.cancel()
        }
        for (position, (index, length)) in actions.submit.enumerated() {
            let unsubmitted = actions.submit.count - position
            let transfer: Transfer
            if index < 0 {
                guard let zeroLengthTransfer else { continue }
                transfer = zeroLengthTransfer
            } else {
                transfer = transfers[index]
                transfer.length = length
            }
            // While in flight the stream keeps itself alive (its completion releases it).
            let retained = Unmanaged.passRetained(self)
            switch transfer.submit() {
            case .submitted:
                continue
            case .refused(let error):
                retained.release()
                perform(state.withLock { $0.machine.refused(error, unsubmitted: unsubmitted) })
                return
            case .cancelled:
                retained.release()
                perform(state.withLock { $0.machine.refused(.interrupted, unsubmitted: unsubmitted) })
                return
            }
        }
        if actions.room, let room = state.withLock({ $0.onRoom }) { room() }
        if let end = actions.end { finish(end) }
    }

    private func finish(_ ending: OutStreamMachine.Ending) {
        let (outcome, waiter) = state.withLock { state -> (Outcome, CheckedContinuation<Outcome, Never>?) in
            let status: TransferStatus
            switch ending {
            case .completed: status = .completed
            case .failed(let failure): status = failure
            case .cancelled: status = .cancelled
            case .refused(let error): status = error == .noDevice ? .noDevice : .error
            }
            let outcome = Outcome(
                result: TransferResult(status: status, actualLength: state.machine.sent), offered: state.machine.offered,
                cancelled: ending == .cancelled)
            state.outcome = outcome
            state.onRoom = nil
            defer { state.waiter = nil }
            return (outcome, state.waiter)
        }
        logger.debug(
            "stream to the device",
            metadata: [
                "usb.endpoint": "\(hex(endpoint))", "usb.stream.bytes": "\(outcome.result.actualLength)",
                "usb.transfer.status": "\(outcome.result.status.rawValue)",
            ])
        waiter?.resume(returning: outcome)
    }

    /// On the loop, once per submission: releases what the submission retained, last.
    private func ended(_ transfer: Transfer) {
        defer { Unmanaged.passUnretained(self).release() }
        let (status, count) = (transfer.status, transfer.actualLength)
        USBMetrics.transfers(type: transfer.type, endpoint: endpoint, outcome: status.rawValue, bytes: count)
        perform(state.withLock { $0.machine.completed(count: count, status: status) })
    }
}
