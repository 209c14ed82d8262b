import CLibUSB
import EventLoop
import Logging
import Synchronization

/// A bulk, interrupt or isochronous IN endpoint read without end: `transfers` URBs of
/// `transferSize` bytes kept in flight, their buffers from usbfs (libusb_dev_mem_alloc: the
/// kernel writes straight into memory this process maps) or, where that fails, ordinary memory.
///
/// Completed buffers go out in order, and go back to the bus only once their bytes are out:
/// handed to a sink that writes them to the client's socket itself (``attach(_:)``: no copy,
/// the buffer resubmitted the moment the kernel has its bytes), or copied by a reader
/// (``read(into:)``, the way over TLS). Everything happens on the event loop, which is the
/// device actor's executor: completions, hand-overs and resubmissions need no thread switch.
/// ``InStreamMachine`` decides; this class makes the calls.
public final class BulkInStream: @unchecked Sendable {
    public struct Options: Sendable, Equatable {
        public var transfers = 8
        public var transferSize = 64 * 1024
        /// End after this many bytes (the last transfer's extra bytes are dropped).
        public var maxBytes: Int?
        /// A URB that sees no data for this long ends the stream as a failure; 0: wait for ever.
        public var timeout: UInt32 = 0
        /// For an isochronous endpoint: the bytes of room in each packet (`transferSize` is a
        /// multiple of it). What the packets bring is packed, so the stream has no gaps; packets
        /// that fail are counted (``isoFailedPackets``) and the stream goes on.
        public var isoPacketSize: Int?

        public init() {}
    }

    public typealias Ending = StreamEnding

    /// What ``read(into:)`` gives.
    public enum Read: Sendable, Equatable {
        /// This many bytes were copied.
        case bytes(Int)
        /// Nothing now: the `wake` handler is called when there is.
        case wait
        /// The stream is over.
        case end(Ending)
    }

    private struct State {
        var machine: InStreamMachine
        var wake: (@Sendable () -> Void)?
        var sink: (any InStreamSink)?
        var isoFailedPackets = 0
        /// Buffers resubmitted after being consumed, and the time they spent out of the bus
        /// (from completing to being submitted again).
        var turnaroundNanoseconds: Int64 = 0
        var completedAt: [ContinuousClock.Instant?]
    }

    public let options: Options
    /// Whether every buffer came from libusb_dev_mem_alloc.
    public let zeroCopy: Bool
    public let endpoint: UInt8
    let handle: USBDeviceHandle
    private let loop: EventLoop
    private let budget: UsbfsBudget
    private var transfers: [Transfer] = []
    private let buffers: TransferBuffers
    private let state: Mutex<State>
    /// The packets of each transfer, for an isochronous endpoint.
    private let iso: IsoLayout?

    /// Allocates the transfers and buffers, which count against the daemon's usbfs share for
    /// the stream's life (``UsbfsBudget.Exhausted`` when they do not fit); nothing is submitted
    /// until ``start()``.
    init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, options: Options, loop: EventLoop,
        budget: UsbfsBudget = .unlimited
    ) throws {
        try budget.reserve(options.transfers * options.transferSize)
        self.budget = budget
        self.handle = handle
        self.endpoint = endpoint
        self.options = options
        self.loop = loop
        let iso = options.isoPacketSize.map {
            IsoLayout(lengths: Array(repeating: $0, count: options.transferSize / max($0, 1)))
        }
        self.iso = iso
        let buffers = TransferBuffers(handle: handle, count: options.transfers, size: options.transferSize)
        self.buffers = buffers
        self.zeroCopy = buffers.zeroCopy
        self.state = Mutex(
            State(
                machine: InStreamMachine(buffers: options.transfers, maxBytes: options.maxBytes),
                completedAt: Array(repeating: nil, count: options.transfers)))
        for index in 0..<options.transfers {
            let transfer: Transfer
            do {
                transfer = try Transfer(
                    handle: handle, endpoint: endpoint, type: type, length: options.transferSize,
                    timeout: options.timeout, isoPackets: iso?.lengths.count ?? 0,
                    buffer: UnsafeMutableRawBufferPointer(start: buffers.pointers[index], count: options.transferSize),
                    completion: { [unowned(unsafe) self] transfer in self.ended(index, transfer) })
            } catch {
                transfers = []
                buffers.free()
                budget.release(options.transfers * options.transferSize)
                throw error
            }
            iso?.apply(to: transfer.pointer)
            transfers.append(transfer)
        }
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: zeroCopy)
    }

    deinit {
        let (machine, turnaround, failed) = state.withLock { ($0.machine, $0.turnaroundNanoseconds, $0.machine.ending) }
        USBMetrics.streamResubmissions(count: machine.resubmissions, waitNanoseconds: turnaround)
        let type = transfers.first?.type ?? 0
        USBMetrics.transfers(
            type: type, endpoint: endpoint, outcome: "completed", bytes: machine.delivered, count: machine.completions)
        if let failed, case .failed(let status) = failed {
            USBMetrics.transfers(type: type, endpoint: endpoint, outcome: status.rawValue, bytes: 0)
        }
        USBMetrics.streamClosed(endpoint: endpoint)
        transfers = []
        buffers.free()
        budget.release(options.transfers * options.transferSize)
    }

    /// Sets the handler called (on any thread) when a ``read(into:)`` that answered `.wait`
    /// would now give something.
    public func onWake(_ wake: @escaping @Sendable () -> Void) {
        state.withLock { $0.wake = wake }
    }

    /// Submits every transfer. Call it on the device actor's executor (the loop).
    func start() {
        for index in transfers.indices where submitNow(index) == false { return }
    }

    // MARK: Consumers

    /// Hands every buffer to `sink` from now on, as it completes (on the loop): the way to the
    /// client's socket without a copy. Call it on the loop.
    public func attach(_ sink: any InStreamSink) {
        let actions = state.withLock { state -> InStreamMachine.Actions in
            state.sink = sink
            return state.machine.attach()
        }
        perform(actions)
    }

    /// The sink has sent buffer `tag` (as ``InStreamSink/send(_:count:tag:)`` gave it): it goes
    /// back to the bus at once. On the loop.
    public func sent(_ tag: Int) {
        perform(state.withLock { $0.machine.sent(tag) })
    }

    /// Copies the next bytes into `buffer` (the way over TLS). The copy is made after the lock
    /// is let go: the bytes are in a buffer nothing else touches until it is resubmitted,
    /// which happens after the copy.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Read {
        let next = state.withLock { $0.machine.read(max: buffer.count) }
        switch next {
        case .wait: return .wait
        case .end(let ending):
            cancelInFlight()
            return .end(ending)
        case .copy(let index, let offset, let count):
            buffer.baseAddress!.copyMemory(from: buffers.pointers[index] + offset, byteCount: count)
            perform(state.withLock { $0.machine.copied(count: count) })
            return .bytes(count)
        }
    }

    // MARK: Ending

    /// Ends the stream cleanly: what is already out is the end of it.
    public func finish() { stop(.finished) }

    /// Ends the stream: transfers in flight are cancelled, buffers freed once they are back.
    public func cancel() { stop(.cancelled) }

    /// Ends the stream because its device was unplugged: a failed end (`no_device`), as if
    /// a transfer had said so, whichever comes first.
    public func deviceGone() { stop(.failed(.noDevice)) }

    /// Bytes delivered, transfers completed, and the mean time a buffer spent out of the bus
    /// between completing and being submitted again.
    public var statistics: (bytes: Int, chunks: Int, meanTurnaroundMicroseconds: Double) {
        state.withLock {
            let machine = $0.machine
            return (
                machine.delivered, machine.completions,
                machine.resubmissions == 0
                    ? 0 : Double($0.turnaroundNanoseconds) / Double(machine.resubmissions) / 1000
            )
        }
    }

    /// Isochronous packets that failed so far (their room is dropped from the stream).
    public var isoFailedPackets: Int { state.withLock { $0.isoFailedPackets } }

    /// On the loop (a stop from elsewhere is queued there: the sink lives there).
    private func stop(_ ending: Ending) {
        if loop.inEventLoop {
            perform(state.withLock { $0.machine.stop(ending) })
        } else {
            loop.execute { [self] in perform(state.withLock { $0.machine.stop(ending) }) }
        }
    }

    // MARK: Doing what the machine says

    private func perform(_ actions: InStreamMachine.Actions) {
        if actions.cancelInFlight { cancelInFlight() }
        let (sink, wake) = state.withLock { ($0.sink, actions.wake ? $0.wake : nil) }
        for (index, count) in actions.deliver {
            sink?.send(buffers.pointers[index], count: count, tag: index)
        }
        for index in actions.submit { submit(index) }
        if let end = actions.end {
            state.withLock { $0.sink = nil }
            sink?.end(end)
        }
        wake?()
    }

    private func submit(_ index: Int) {
        let now = ContinuousClock.now
        state.withLock { state in
            if let completed = state.completedAt[index] {
                state.turnaroundNanoseconds += (now - completed).nanoseconds
                state.completedAt[index] = nil
            }
        }
        _ = submitNow(index)
    }

    /// libusb_submit_transfer through the transfer; while it is in flight the stream keeps
    /// itself alive (its completion releases it). False if it was not submitted.
    private func submitNow(_ index: Int) -> Bool {
        let retained = Unmanaged.passRetained(self)
        switch transfers[index].submit() {
        case .submitted:
            state.withLock { $0.machine.submitted(index) }
            return true
        case .refused(let error):
            retained.release()
            perform(state.withLock { $0.machine.submitFailed(error) })
            return false
        case .cancelled:
            retained.release()
            return false
        }
    }

    private func cancelInFlight() {
        let flying = state.withLock { $0.machine.inFlight }
        for (index, inFlight) in flying.enumerated() where inFlight { transfers[index].cancel() }
    }

    /// On the loop, once per submitted transfer: releases what its submission retained, last.
    private func ended(_ index: Int, _ transfer: Transfer) {
        defer { Unmanaged.passUnretained(self).release() }
        let status = transfer.status
        var count = transfer.actualLength
        var isoFailed = 0
        if let iso {
            // Each packet's bytes sit at the packet's own offset: pack them.
            let packets = iso.results(of: transfer.pointer)
            isoFailed = packets.count(where: { $0.status != .completed })
            count = IsoLayout.pack(packets, in: buffers.pointers[index])
        }
        let now = ContinuousClock.now
        let actions = state.withLock { state in
            state.isoFailedPackets += isoFailed
            state.completedAt[index] = now
            return state.machine.completed(index, count: count, status: status)
        }
        perform(actions)
    }
}

/// Where a stream's buffers go when they are handed over rather than read: the HTTP side's
/// socket writer. Called on the event loop.
public protocol InStreamSink: AnyObject, Sendable {
    /// Send `count` bytes at `bytes`; then call ``BulkInStream/sent(_:)`` with `tag`. The
    /// memory is unchanged until then.
    func send(_ bytes: UnsafeRawPointer, count: Int, tag: Int)
    /// The stream is over, after everything handed over so far.
    func end(_ ending: BulkInStream.Ending)
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
