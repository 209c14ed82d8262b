import CLibUSB
import Synchronization

/// One transfer that a task waits for: a ``Transfer`` (its own buffer, or a stream's), submitted
/// from the device's actor, whose end resumes the waiting task, and which is cancelled when
/// that task is cancelled.
final class PendingTransfer: @unchecked Sendable {
    /// How the wait for a transfer ended.
    enum Outcome: Sendable, Equatable {
        /// The transfer ran; `actualLength` bytes moved (the setup packet not counted).
        case finished(TransferStatus, actualLength: Int)
        /// libusb_submit_transfer refused it: no URB was queued.
        case refused(USBError)
    }

    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        /// The outcome, when it came before anyone waited (``submit()`` then ``outcome()``).
        var outcome: Outcome?
    }

    private var transfer: Transfer!
    /// The packets of an isochronous transfer (nil for the other types).
    private(set) var iso: IsoLayout?
    private let state = Mutex(State())

    /// A transfer of `length` bytes with a buffer of its own, or in `buffer`, which the caller
    /// owns and keeps until the transfer has ended (a stream's buffers, used again and again).
    init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, length: Int, timeout: UInt32,
        flags: libusb_transfer_flags? = nil, buffer: UnsafeMutableRawBufferPointer? = nil
    ) throws(USBError) {
        transfer = try Transfer(
            handle: handle, endpoint: endpoint, type: type, length: length, timeout: timeout, flags: flags, buffer: buffer,
            completion: { [weak self] transfer in self?.ended(transfer) })
    }

    /// An isochronous transfer of these packets, with a buffer for all of them.
    init(handle: USBDeviceHandle, endpoint: UInt8, isoPackets: [Int], timeout: UInt32) throws(USBError) {
        let layout = IsoLayout(lengths: isoPackets)
        iso = layout
        transfer = try Transfer(
            handle: handle, endpoint: endpoint, type: LIBUSB_TRANSFER_TYPE_ISOCHRONOUS, length: layout.totalLength,
            timeout: timeout, isoPackets: isoPackets.count,
            completion: { [weak self] transfer in self?.ended(transfer) })
        layout.apply(to: transfer.pointer)
    }

    var type: UInt8 { transfer.type }
    var endpoint: UInt8 { transfer.endpoint }
    var buffer: UnsafeMutableRawBufferPointer { transfer.buffer }

    /// Sends fewer or shorter isochronous packets than allocated (before submitting): at most
    /// as many, adding up to at most the buffer.
    func setIsoPackets(_ lengths: [Int]) {
        precondition(lengths.count <= iso?.lengths.count ?? 0 && lengths.reduce(0, +) <= buffer.count)
        iso = IsoLayout(lengths: lengths)
        iso?.apply(to: transfer.pointer)
        transfer.length = lengths.reduce(0, +)
    }

    /// Each packet's outcome, once an isochronous transfer has ended.
    func isoResults() -> [IsoPacketResult] {
        iso?.results(of: transfer.pointer) ?? []
    }

    /// Sends fewer bytes than the buffer holds (before submitting).
    func setLength(_ length: Int) { transfer.length = length }

    /// Submits the transfer and waits for its end. Cancelling the calling task cancels the
    /// transfer: the URB is discarded and the outcome is `.finished(.cancelled, …)`.
    func run(isolation: isolated (any Actor)? = #isolation) async -> Outcome {
        await withTaskCancellationHandler {
            if let early = start() { return early }
            return await outcome()
        } onCancel: {
            cancel()
        }
    }

    /// Submits the transfer without waiting (from the caller's isolation: a device actor,
    /// which keeps URBs in order); ``outcome()`` waits for its end.
    func submit() throws(USBError) {
        switch start() {
        case nil: return
        case .refused(let error): throw error
        case .finished: throw .interrupted
        }
    }

    /// The end of the transfer, whether it came already or comes later.
    func outcome() async -> Outcome {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Outcome? in
                if let outcome = state.outcome { return outcome }
                state.continuation = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Asks libusb to cancel the transfer if it is in flight, or keeps it from being submitted.
    /// The outcome still arrives through ``run(isolation:)`` or ``outcome()``.
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

    /// On the event loop, once, when the transfer ends.
    private func ended(_ transfer: Transfer) {
        let outcome = Outcome.finished(transfer.status, actualLength: transfer.actualLength)
        let continuation = state.withLock { state in
            if state.continuation == nil { state.outcome = outcome }
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: outcome)
    }
}
