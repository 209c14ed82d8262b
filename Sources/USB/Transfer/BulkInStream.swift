import EventLoop
import Logging

/// A bulk, interrupt or isochronous IN endpoint read without end: `transfers` URBs of
/// `transferSize` bytes kept in flight, their buffers from the device's DMA memory (usbfs:
/// the kernel writes straight into memory this process maps) or, where that fails, ordinary
/// memory.
///
/// Completed buffers go out in order, and go back to the bus only once their bytes are out:
/// handed to a sink that writes them to the client's socket itself (``attach(_:)``: no copy,
/// the buffer resubmitted the moment the kernel has its bytes), or copied by a reader
/// (``read(into:)``, the way over TLS). ``InStreamMachine`` decides; this class makes the calls.
///
/// Lives on the event loop, which is the device actor's executor too: completions, hand-overs
/// and resubmissions happen there without a thread switch or a lock, and every method checks
/// it is called there, but the three that end the stream (``finish()``, ``cancel()``,
/// ``deviceGone()``), which may come from anywhere (a timer, a lease, the session closing)
/// and hop to the loop.
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

    public let options: Options
    /// Whether every buffer came from the device's DMA memory.
    public let zeroCopy: Bool
    public let endpoint: UInt8
    private let loop: EventLoop
    private let budget: UsbfsShare
    private var transfers: [Transfer] = []
    private let buffers: TransferBuffers
    /// The packets of each transfer, for an isochronous endpoint.
    private let iso: IsoLayout?
    // Loop-confined state.
    private var machine: InStreamMachine
    private var wake: (@Sendable () -> Void)?
    private var sink: (any InStreamSink)?
    private var failedIsoPackets = 0
    /// Buffers resubmitted after being consumed, and the time they spent out of the bus
    /// (from completing to being submitted again).
    private var turnaroundNanoseconds: Int64 = 0
    private var completedAt: [ContinuousClock.Instant?]
    /// Actions asked for while others were being made (``perform(_:)``).
    private var performing = false
    private var deferred: [InStreamMachine.Actions] = []

    /// Allocates the transfers and buffers, which count against the daemon's usbfs share for
    /// the stream's life (``UsbfsBudget.Exhausted`` when they do not fit); nothing is submitted
    /// until ``start()``.
    init(
        io: any DeviceIO, endpoint: UInt8, type: TransferType, options: Options, loop: EventLoop,
        budget: UsbfsShare = .unlimited
    ) throws {
        try budget.reserve(options.transfers * options.transferSize)
        self.budget = budget
        self.endpoint = endpoint
        self.options = options
        self.loop = loop
        let iso = options.isoPacketSize.map {
            IsoLayout(lengths: Array(repeating: $0, count: options.transferSize / max($0, 1)))
        }
        self.iso = iso
        let buffers = TransferBuffers(io: io, count: options.transfers, size: options.transferSize)
        self.buffers = buffers
        self.zeroCopy = buffers.zeroCopy
        self.machine = InStreamMachine(buffers: options.transfers, maxBytes: options.maxBytes)
        self.completedAt = Array(repeating: nil, count: options.transfers)
        for index in 0..<options.transfers {
            let transfer: Transfer
            do {
                let spec = URBSpec(
                    endpoint: endpoint, type: type, length: options.transferSize, timeout: options.timeout,
                    isoPackets: iso?.lengths.count ?? 0)
                transfer = try Transfer(
                    io: io, spec: spec, buffer: buffers[index], loop: loop,
                    completion: { [unowned(unsafe) self] transfer in self.ended(index, transfer) })
            } catch {
                transfers = []
                buffers.free()
                budget.release(options.transfers * options.transferSize)
                throw error
            }
            if let iso { transfer.setIsoPackets(iso) }
            transfers.append(transfer)
        }
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: zeroCopy)
    }

    deinit {
        let failed = machine.ending
        USBMetrics.streamResubmissions(count: machine.resubmissions, waitNanoseconds: turnaroundNanoseconds)
        let type = transfers.first?.type ?? .bulk
        USBMetrics.transfers(
            type: type, endpoint: endpoint, status: .completed, bytes: machine.delivered, count: machine.completions)
        if let failed, case .failed(let status) = failed {
            USBMetrics.transfers(type: type, endpoint: endpoint, status: status, bytes: 0)
        }
        USBMetrics.streamClosed(endpoint: endpoint)
        transfers = []
        buffers.free()
        budget.release(options.transfers * options.transferSize)
    }

    /// Sets the handler called (on the loop) when a ``read(into:)`` that answered `.wait`
    /// would now give something.
    public func onWake(_ wake: @escaping @Sendable () -> Void) {
        loop.preconditionInEventLoop()
        self.wake = wake
    }

    /// Submits every transfer, from the device actor (on the loop).
    func start() {
        loop.preconditionInEventLoop()
        for index in transfers.indices where submitNow(index) == false { return }
    }

    // MARK: Consumers

    /// Hands every buffer to `sink` from now on, as it completes: the way to the client's
    /// socket without a copy.
    public func attach(_ sink: any InStreamSink) {
        loop.preconditionInEventLoop()
        self.sink = sink
        perform(machine.attach())
    }

    /// The sink has sent buffer `tag` (as ``InStreamSink/send(_:count:tag:)`` gave it): it goes
    /// back to the bus at once.
    public func sent(_ tag: Int) {
        loop.preconditionInEventLoop()
        perform(machine.sent(tag))
    }

    /// Copies the next bytes into `buffer` (the way over TLS); the buffer they come from goes
    /// back to the bus once all of it is copied.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Read {
        loop.preconditionInEventLoop()
        switch machine.read(max: buffer.count) {
        case .wait: return .wait
        case .end(let ending):
            cancelInFlight()
            return .end(ending)
        case .copy(let index, let offset, let count):
            buffer.baseAddress!.copyMemory(from: buffers.pointer(index) + offset, byteCount: count)
            perform(machine.copied(count: count))
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
        loop.preconditionInEventLoop()
        return (
            machine.delivered, machine.completions,
            machine.resubmissions == 0 ? 0 : Double(turnaroundNanoseconds) / Double(machine.resubmissions) / 1000
        )
    }

    /// Isochronous packets that failed so far (their room is dropped from the stream).
    public var isoFailedPackets: Int {
        loop.preconditionInEventLoop()
        return failedIsoPackets
    }

    /// On the loop (a stop from elsewhere is queued there: the sink lives there).
    private func stop(_ ending: Ending) {
        if loop.inEventLoop {
            perform(machine.stop(ending))
        } else {
            loop.execute { [self] in perform(machine.stop(ending)) }
        }
    }

    // MARK: Doing what the machine says

    /// The machine's actions, made in the order it gave them. A call made here can come back
    /// before it returns (a sink that sends at once reports a buffer sent, whose resubmission
    /// fails on an unplugged device and ends the stream): what that asks is made after the
    /// actions under way, so that the buffers handed over before are not overtaken by the end.
    private func perform(_ actions: InStreamMachine.Actions) {
        guard !performing else {
            deferred.append(actions)
            return
        }
        performing = true
        defer { performing = false }
        make(actions)
        while !deferred.isEmpty { make(deferred.removeFirst()) }
    }

    private func make(_ actions: InStreamMachine.Actions) {
        if actions.cancelInFlight { cancelInFlight() }
        let sink = self.sink
        for (index, count) in actions.deliver {
            sink?.send(buffers.pointer(index), count: count, tag: index)
        }
        for index in actions.submit { submit(index) }
        if let end = actions.end {
            self.sink = nil
            sink?.end(end)
        }
        if actions.wake { wake?() }
    }

    private func submit(_ index: Int) {
        if let completed = completedAt[index] {
            turnaroundNanoseconds += (ContinuousClock.now - completed).nanoseconds
            completedAt[index] = nil
        }
        _ = submitNow(index)
    }

    /// Submits through the transfer; while it is in flight the stream keeps itself alive (its
    /// completion releases it). False if it was not submitted.
    private func submitNow(_ index: Int) -> Bool {
        let retained = Unmanaged.passRetained(self)
        switch transfers[index].submit() {
        case .submitted:
            machine.submitted(index)
            return true
        case .refused(let error):
            retained.release()
            perform(machine.submitFailed(error))
            return false
        case .cancelled:
            retained.release()
            return false
        }
    }

    private func cancelInFlight() {
        for (index, inFlight) in machine.inFlight.enumerated() where inFlight { transfers[index].cancel() }
    }

    /// On the loop, once per submitted transfer: releases what its submission retained, last.
    private func ended(_ index: Int, _ transfer: Transfer) {
        defer { Unmanaged.passUnretained(self).release() }
        let status = transfer.status
        var count = transfer.actualLength
        if let iso {
            // Each packet's bytes sit at the packet's own offset: pack them.
            let packets = transfer.isoResults(iso)
            failedIsoPackets += packets.count(where: { $0.status != .completed })
            count = IsoLayout.pack(packets, in: buffers.pointer(index))
        }
        completedAt[index] = ContinuousClock.now
        perform(machine.completed(index, count: count, status: status))
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
