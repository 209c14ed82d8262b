import EventLoop

/// One transfer that a task waits for: a ``Transfer`` (its own buffer, or a stream's), submitted
/// from the device's actor, whose end resumes the waiting task, and which is cancelled when
/// that task is cancelled.
///
/// Lives on the event loop (the device actor's executor): made, submitted, awaited and
/// completed there, so its state needs no lock. The cancellation of the waiting task may come
/// from any thread; it hops to the loop (``Transfer/cancel()``).
final class PendingTransfer: @unchecked Sendable {
    /// How the wait for a transfer ended.
    enum Outcome: Sendable, Equatable {
        /// The transfer ran; `actualLength` bytes moved (the setup packet not counted).
        case finished(TransferStatus, actualLength: Int)
        /// The submission was refused: no URB was queued.
        case refused(USBError)
    }

    private var transfer: Transfer!
    /// The packets of an isochronous transfer (nil for the other types).
    private(set) var iso: IsoLayout?
    private let loop: EventLoop
    /// Who waits for the outcome, or the outcome when it came before anyone waited.
    private var continuation: CheckedContinuation<Outcome, Never>?
    private var outcomeCame: Outcome?

    /// A transfer of `spec.length` bytes with a buffer of its own, or in `buffer`, which the
    /// caller owns and keeps until the transfer has ended (a stream's buffers, used again and again).
    init(io: any DeviceIO, spec: URBSpec, buffer: UnsafeMutableRawBufferPointer? = nil, loop: EventLoop) throws(USBError) {
        self.loop = loop
        transfer = try Transfer(io: io, spec: spec, buffer: buffer, loop: loop) { [weak self] in self?.ended($0) }
    }

    /// An isochronous transfer of these packets, with a buffer for all of them.
    convenience init(io: any DeviceIO, endpoint: UInt8, isoPackets: [Int], timeout: UInt32, loop: EventLoop)
        throws(USBError)
    {
        let layout = IsoLayout(lengths: isoPackets)
        try self.init(
            io: io,
            spec: URBSpec(
                endpoint: endpoint, type: .isochronous, length: layout.totalLength, timeout: timeout,
                isoPackets: isoPackets.count),
            loop: loop)
        iso = layout
        transfer.setIsoPackets(layout)
    }

    var type: TransferType { transfer.type }
    var endpoint: UInt8 { transfer.endpoint }
    var buffer: UnsafeMutableRawBufferPointer { transfer.buffer }

    /// Sends fewer or shorter isochronous packets than allocated (before submitting): at most
    /// as many, adding up to at most the buffer.
    func setIsoPackets(_ lengths: [Int]) {
        precondition(lengths.count <= iso?.lengths.count ?? 0 && lengths.reduce(0, +) <= buffer.count)
        let layout = IsoLayout(lengths: lengths)
        iso = layout
        transfer.setIsoPackets(layout)
    }

    /// Each packet's outcome, once an isochronous transfer has ended.
    func isoResults() -> [IsoPacketResult] {
        iso.map { transfer.isoResults($0) } ?? []
    }

    /// Sends fewer bytes than the buffer holds (before submitting).
    func setLength(_ length: Int) { transfer.length = length }

    /// Submits the transfer and waits for its end. Cancelling the calling task cancels the
    /// transfer: the URB is discarded and the outcome is `.finished(.cancelled, …)`.
    func run(isolation: isolated (any Actor)? = #isolation) async -> Outcome {
        await withTaskCancellationHandler {
            // Naming `isolation` makes the operation run where the caller is (the device
            // actor, on the loop), not on the global executor.
            _ = isolation
            if let early = start() { return early }
            return await outcome()
        } onCancel: {
            cancel()
        }
    }

    /// Submits the transfer without waiting (from the device actor, which keeps URBs in
    /// order); ``outcome()`` waits for its end.
    func submit() throws(USBError) {
        switch start() {
        case nil: return
        case .refused(let error): throw error
        case .finished: throw .interrupted
        }
    }

    /// The end of the transfer, whether it came already or comes later. On the loop.
    func outcome(isolation: isolated (any Actor)? = #isolation) async -> Outcome {
        await withCheckedContinuation { continuation in
            loop.preconditionInEventLoop()
            if let outcomeCame {
                continuation.resume(returning: outcomeCame)
            } else {
                self.continuation = continuation
            }
        }
    }

    /// Asks for the transfer to be cancelled if it is in flight, or keeps it from being
    /// submitted; from any thread. The outcome still arrives through ``run(isolation:)`` or
    /// ``outcome(isolation:)``.
    func cancel() { transfer.cancel() }

    /// The bytes at `offset..<offset+count` of the buffer, as an array.
    func bytes(from offset: Int, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count]))
    }

    /// Submits; nil once in flight, else the outcome it has instead.
    private func start() -> Outcome? {
        switch transfer.submit() {
        case .submitted: return nil
        case .refused(let error): return .refused(error)
        case .cancelled: return .finished(.cancelled, actualLength: 0)
        }
    }

    /// On the loop, once, when the transfer ends.
    private func ended(_ transfer: Transfer) {
        let outcome = Outcome.finished(transfer.status, actualLength: transfer.actualLength)
        guard let continuation else {
            outcomeCame = outcome
            return
        }
        self.continuation = nil
        continuation.resume(returning: outcome)
    }
}
