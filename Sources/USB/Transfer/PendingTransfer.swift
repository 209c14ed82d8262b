import CLibUSB
import Synchronization

/// One asynchronous libusb transfer (`struct libusb_transfer`) with its own buffer: filled,
/// submitted from the caller's isolation (a device actor), completed on the event thread,
/// and cancelled (libusb_cancel_transfer) when the awaiting task is cancelled.
final class PendingTransfer: @unchecked Sendable {
    /// How the wait for a transfer ended.
    enum Outcome: Sendable, Equatable {
        /// The transfer ran; `actualLength` bytes moved (the setup packet not counted).
        case finished(TransferStatus, actualLength: Int)
        /// libusb_submit_transfer refused it: no URB was queued.
        case refused(USBError)
    }

    private enum Phase { case ready, submitted, cancelRequested, finished }

    private struct State {
        var phase = Phase.ready
        var continuation: CheckedContinuation<Outcome, Never>?
        /// The outcome, when it came before anyone waited (``submit()`` then ``outcome()``).
        var outcome: Outcome?
    }

    /// Keeps the handle open while the kernel holds the transfer.
    let handle: USBDeviceHandle
    private let transfer: UnsafeMutablePointer<libusb_transfer>
    /// The libusb transfer type and the endpoint, as set at creation (for metrics).
    let type: UInt8
    let endpoint: UInt8
    /// The bytes the kernel reads from or writes into; for control transfers the 8-byte
    /// setup packet comes first.
    let buffer: UnsafeMutableRawBufferPointer
    /// The packets of an isochronous transfer (nil for the other types).
    private(set) var iso: IsoLayout?
    /// Whether `buffer` is this transfer's own (else a stream's, used again after it).
    private let ownsBuffer: Bool
    private let state = Mutex(State())

    /// libusb_alloc_transfer and a buffer of `length` bytes.
    convenience init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, length: Int, timeout: UInt32,
        flags: libusb_transfer_flags? = nil
    ) throws(USBError) {
        try self.init(
            handle: handle, endpoint: endpoint, type: type, length: length, timeout: timeout, flags: flags, iso: nil,
            buffer: nil)
    }

    /// A transfer of `length` bytes in `buffer`, which the caller owns and keeps until the
    /// transfer has ended (a stream's buffers, used again and again).
    convenience init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, buffer: UnsafeMutableRawBufferPointer,
        length: Int, timeout: UInt32
    ) throws(USBError) {
        try self.init(
            handle: handle, endpoint: endpoint, type: type, length: length, timeout: timeout, flags: nil, iso: nil,
            buffer: buffer)
    }

    /// An isochronous transfer of these packets (libusb_alloc_transfer with their count), with
    /// a buffer for all of them.
    convenience init(handle: USBDeviceHandle, endpoint: UInt8, isoPackets: [Int], timeout: UInt32) throws(USBError) {
        let layout = IsoLayout(lengths: isoPackets)
        try self.init(
            handle: handle, endpoint: endpoint, type: LIBUSB_TRANSFER_TYPE_ISOCHRONOUS, length: layout.totalLength,
            timeout: timeout, flags: nil, iso: layout, buffer: nil)
    }

    private init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, length: Int, timeout: UInt32,
        flags: libusb_transfer_flags?, iso: IsoLayout?, buffer: UnsafeMutableRawBufferPointer?
    ) throws(USBError) {
        guard let transfer = libusb_alloc_transfer(Int32(iso?.lengths.count ?? 0)) else { throw .noMemory }
        self.iso = iso
        self.handle = handle
        self.transfer = transfer
        self.type = UInt8(type.rawValue)
        self.endpoint = endpoint
        self.ownsBuffer = buffer == nil
        self.buffer = buffer ?? UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 16)
        transfer.pointee.dev_handle = handle.pointer
        transfer.pointee.endpoint = endpoint
        transfer.pointee.type = UInt8(type.rawValue)
        transfer.pointee.timeout = timeout
        transfer.pointee.length = Int32(length)
        transfer.pointee.buffer = self.buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        transfer.pointee.flags = UInt8(flags?.rawValue ?? 0)
        transfer.pointee.callback = transferFinished
        iso?.apply(to: transfer)
    }

    /// Sends fewer or shorter isochronous packets than allocated (before submitting): at most
    /// as many, adding up to at most the buffer.
    func setIsoPackets(_ lengths: [Int]) {
        precondition(lengths.count <= iso?.lengths.count ?? 0 && lengths.reduce(0, +) <= buffer.count)
        iso = IsoLayout(lengths: lengths)
        iso?.apply(to: transfer)
        transfer.pointee.length = Int32(lengths.reduce(0, +))
    }

    /// Each packet's outcome, once an isochronous transfer has ended.
    func isoResults() -> [IsoPacketResult] {
        iso?.results(of: transfer) ?? []
    }

    deinit {
        libusb_free_transfer(transfer)
        if ownsBuffer { buffer.deallocate() }
    }

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

    /// Sends fewer bytes than the buffer holds (before submitting).
    func setLength(_ length: Int) {
        precondition(length <= buffer.count)
        transfer.pointee.length = Int32(length)
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
    func cancel() {
        let inFlight = state.withLock { state -> Bool in
            switch state.phase {
            case .ready:
                state.phase = .cancelRequested
                return false
            case .submitted: return true
            case .cancelRequested, .finished: return false
            }
        }
        // Outside the lock: the callback takes it. A transfer that finished meanwhile
        // answers LIBUSB_ERROR_NOT_FOUND, which is fine.
        if inFlight { _ = libusb_cancel_transfer(transfer) }
    }

    /// The bytes at `offset..<offset+count` of the buffer, as an array.
    func bytes(from offset: Int, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count]))
    }

    /// The one submission path: nil once the transfer is in flight, else the outcome it has
    /// instead (cancelled before it was submitted, or refused by libusb). Submission happens
    /// under the lock, so that a concurrent cancel() sees either "not yet submitted" (and
    /// prevents it) or "in flight" (and cancels it).
    private func start() -> Outcome? {
        state.withLock { state -> Outcome? in
            guard state.phase == .ready else {
                state.phase = .finished
                return .finished(.cancelled, actualLength: 0)
            }
            let retained = Unmanaged.passRetained(self)
            transfer.pointee.user_data = retained.toOpaque()
            let result = libusb_submit_transfer(transfer)
            guard result == 0 else {
                retained.release()
                state.phase = .finished
                return .refused(USBError(result))
            }
            state.phase = .submitted
            return nil
        }
    }

    /// Called once by libusb on the event thread when the transfer ends.
    fileprivate func finished() {
        let outcome = Outcome.finished(
            TransferStatus(transfer.pointee.status), actualLength: Int(transfer.pointee.actual_length))
        let continuation = state.withLock { state in
            state.phase = .finished
            if state.continuation == nil { state.outcome = outcome }
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: outcome)
    }
}

/// libusb_transfer_cb_fn for every ``PendingTransfer``: `user_data` holds the transfer,
/// retained at submission.
private let transferFinished: libusb_transfer_cb_fn = { transfer in
    guard let userData = transfer?.pointee.user_data else { return }
    Unmanaged<PendingTransfer>.fromOpaque(userData).takeRetainedValue().finished()
}
