import EventLoop
import Logging

/// A request body streamed to a bulk, interrupt or isochronous OUT endpoint as it arrives: the
/// server hands over each piece of the body (``take(_:)``), which is copied straight into the
/// buffer of the next transfer (the device's DMA memory where the kernel allows it: the URB's
/// data is then not copied again into the kernel) and submitted as soon as that buffer is full,
/// with up to `transfers` transfers in flight. When every buffer is in flight the client is
/// held back (``take(_:)`` takes less than offered) until a transfer comes back (`onRoom`).
/// For an isochronous endpoint each transfer is cut into packets; a packet that fails does not
/// stop the stream (``isoSummary`` counts it), a transfer that fails as a whole does.
/// ``OutStreamMachine`` decides; this class makes the calls.
///
/// Lives on the event loop, which is the device actor's executor too: pieces, submissions
/// and completions happen there, with no task, thread switch or lock per piece or transfer.
/// Every method checks it is called there, but ``endOfBody()`` and ``cancel()``, which hop.
public final class OutStream: @unchecked Sendable {
    /// How a stream to the device went: the outcome, the bytes the device took, and the bytes
    /// the body gave.
    public struct Outcome: Sendable, Equatable {
        public var result: TransferResult
        public var offered: Int
        /// The stream was cut or the client went away (not a transfer's status).
        public var cancelled: Bool
        /// For an isochronous endpoint: packet by packet.
        public var iso: IsoStreamSummary?
    }

    public let endpoint: UInt8
    public let zeroCopy: Bool
    private let loop: EventLoop
    private let budget: UsbfsShare
    private let reserved: Int
    private let logger: Logger
    private var transfers: [Transfer] = []
    /// The zero-length packet that ends data filling its last packet, when asked for.
    private var zeroLengthTransfer: Transfer?
    private let buffers: TransferBuffers
    /// The packet size of an isochronous endpoint (nil for the other types).
    private let isoPacketSize: Int?
    /// The packets of each isochronous transfer in flight, by buffer index.
    private var isoLayouts: [IsoLayout?]
    // Loop-confined state.
    private var machine: OutStreamMachine
    private var room: (@Sendable () -> Void)?
    private var finished: Outcome?
    private var waiter: CheckedContinuation<Outcome, Never>?
    private var summary = IsoStreamSummary()

    /// `isoPacketSize`: the endpoint is isochronous, and each transfer (`transferSize`, a
    /// multiple of it) is cut into packets of this size (the last one of the body perhaps shorter).
    init(
        io: any DeviceIO, endpoint: UInt8, type: TransferType, transfers count: Int, transferSize: Int,
        packetSize: Int, zeroLengthPacket: Bool, isoPacketSize: Int? = nil, timeout: UInt32, loop: EventLoop,
        budget: UsbfsShare = .unlimited, logger: Logger
    ) throws {
        try budget.reserve(count * transferSize)
        self.budget = budget
        self.reserved = count * transferSize
        self.endpoint = endpoint
        self.loop = loop
        self.logger = logger
        self.isoPacketSize = isoPacketSize
        self.isoLayouts = Array(repeating: nil, count: count)
        let buffers = TransferBuffers(io: io, count: count, size: transferSize)
        self.buffers = buffers
        self.zeroCopy = buffers.zeroCopy
        self.machine = OutStreamMachine(
            buffers: count, transferSize: transferSize, packetSize: packetSize, zeroLengthPacket: zeroLengthPacket)
        let packets = isoPacketSize.map { (transferSize + $0 - 1) / $0 } ?? 0
        do {
            for index in 0..<count {
                let spec = URBSpec(
                    endpoint: endpoint, type: type, length: transferSize, timeout: timeout, isoPackets: packets)
                transfers.append(
                    try Transfer(
                        io: io, spec: spec, buffer: buffers[index], loop: loop,
                        completion: { [unowned(unsafe) self] transfer in self.ended(index, transfer) }))
            }
            if zeroLengthPacket {
                zeroLengthTransfer = try Transfer(
                    io: io, spec: URBSpec(endpoint: endpoint, type: type, length: 0, timeout: timeout), loop: loop,
                    completion: { [unowned(unsafe) self] transfer in self.ended(-1, transfer) })
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
        loop.preconditionInEventLoop()
        room = handler
    }

    /// The next piece of the body: copies what fits into the transfers' buffers, submits every
    /// buffer it fills; how many bytes it took (fewer than offered: hold the client back until
    /// `onRoom`).
    public func take(_ bytes: UnsafeRawBufferPointer) -> Int {
        loop.preconditionInEventLoop()
        let (taken, actions) = machine.take(bytes.count)
        for copy in actions.copies {
            (buffers.pointer(copy.index) + copy.offset).copyMemory(
                from: bytes.baseAddress! + copy.from, byteCount: copy.count)
        }
        perform(actions)
        return taken
    }

    /// The whole body is in: the rest goes out, then the stream ends. From any thread.
    public func endOfBody() {
        onLoop { [self] in perform(machine.endOfBody()) }
    }

    /// The client went away, or the stream is cut (a lease, the device closed): nothing more
    /// goes out, the transfers in flight are cancelled. From any thread.
    public func cancel() {
        onLoop { [self] in perform(machine.stop()) }
    }

    /// Waits for the end of the stream, on the loop (the device actor's executor).
    public func outcome(isolation: isolated (any Actor)? = #isolation) async -> Outcome {
        await withCheckedContinuation { continuation in
            loop.preconditionInEventLoop()
            if let finished {
                continuation.resume(returning: finished)
            } else {
                waiter = continuation
            }
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
                if let isoPacketSize {
                    var lengths = Array(repeating: isoPacketSize, count: length / isoPacketSize)
                    if length % isoPacketSize != 0 { lengths.append(length % isoPacketSize) }
                    let layout = IsoLayout(lengths: lengths)
                    isoLayouts[index] = layout
                    transfer.setIsoPackets(layout)
                } else {
                    transfer.length = length
                }
            }
            // While in flight the stream keeps itself alive (its completion releases it).
            let retained = Unmanaged.passRetained(self)
            switch transfer.submit() {
            case .submitted:
                continue
            case .refused(let error):
                retained.release()
                perform(machine.refused(error, unsubmitted: unsubmitted))
                return
            case .cancelled:
                retained.release()
                perform(machine.refused(.interrupted, unsubmitted: unsubmitted))
                return
            }
        }
        if actions.room { room?() }
        if let end = actions.end { finish(end) }
    }

    private func finish(_ ending: OutStreamMachine.Ending) {
        let status: TransferStatus
        switch ending {
        case .completed: status = .completed
        case .failed(let failure): status = failure
        case .cancelled: status = .cancelled
        case .refused(let error): status = error == .noDevice ? .noDevice : .error
        }
        var iso: IsoStreamSummary?
        if isoPacketSize != nil {
            summary.status = status
            iso = summary
        }
        let outcome = Outcome(
            result: TransferResult(status: status, actualLength: machine.sent), offered: machine.offered,
            cancelled: ending == .cancelled, iso: iso)
        finished = outcome
        room = nil
        logger.debug(
            "stream to the device",
            metadata: [
                "usb.endpoint": "\(hex(endpoint))", "usb.stream.bytes": "\(outcome.result.actualLength)",
                "usb.transfer.status": "\(outcome.result.status.rawValue)",
            ])
        let waiter = self.waiter
        self.waiter = nil
        waiter?.resume(returning: outcome)
    }

    /// On the loop, once per submission: releases what the submission retained, last.
    private func ended(_ index: Int, _ transfer: Transfer) {
        defer { Unmanaged.passUnretained(self).release() }
        let status = transfer.status
        var count = transfer.actualLength
        if index >= 0, let layout = isoLayouts[index] {
            let packets = transfer.isoResults(layout)
            summary.add(packets: packets)
            count = packets.reduce(0) { $0 + $1.actualLength }
        }
        USBMetrics.transfers(type: transfer.type, endpoint: endpoint, status: status, bytes: count)
        perform(machine.completed(count: count, status: status))
    }
}

/// How a stream to an isochronous endpoint went, packet by packet.
public struct IsoStreamSummary: Sendable, Equatable {
    /// The first transfer that failed as a whole, else `completed`.
    public var status: TransferStatus = .completed
    public var packets = 0
    public var failedPackets = 0
    /// Bytes the device took.
    public var actualLength = 0
    /// The first failed packets: their index in the stream and status (at most 16).
    public var failures: [Failure] = []

    public struct Failure: Sendable, Equatable {
        public var index: Int
        public var status: TransferStatus
    }

    public init() {}

    mutating func add(packets: [IsoPacketResult]) {
        for packet in packets {
            if packet.status != .completed {
                failedPackets += 1
                if failures.count < 16 { failures.append(Failure(index: self.packets, status: packet.status)) }
            }
            actualLength += packet.actualLength
            self.packets += 1
        }
    }
}
