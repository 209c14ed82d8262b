import CLibUSB
import Logging
import Synchronization

/// A bulk, interrupt or isochronous IN endpoint read without end: `transfers` URBs of `transferSize` bytes
/// kept in flight, their buffers from usbfs (libusb_dev_mem_alloc: the kernel writes straight
/// into memory this process maps, no copy) or, where that fails, ordinary memory.
///
/// Completed buffers wait in order until ``read(into:)`` has taken all their bytes, and only
/// then are submitted again: a reader that does not read holds the device back, and memory
/// stays at `transfers × transferSize` whatever it does. Submissions go through the device's
/// actor (`submitter`, which runs them on the actor's own thread).
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

    /// Why a stream ended.
    public enum Ending: Sendable, Equatable {
        /// `maxBytes` were delivered.
        case limit
        /// ``finish()`` was called (a duration ran out).
        case finished
        /// ``cancel()`` was called (the client went away, the device was closed).
        case cancelled
        /// A transfer ended with this status.
        case failed(TransferStatus)
        /// libusb refused a submission.
        case refused(USBError)

        /// A clean end, that a client may take as the end of the data.
        public var isClean: Bool { self == .limit || self == .finished }

        public var name: String {
            switch self {
            case .limit: "limit"
            case .finished: "finished"
            case .cancelled: "cancelled"
            case .failed(let status): status.rawValue
            case .refused(let error): error.name
            }
        }
    }

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
        /// Completed buffers in order: (index, byte count).
        var ready: [(index: Int, count: Int)] = []
        /// Bytes of the first ready buffer already read.
        var offset = 0
        var inFlight: [Bool]
        var ending: Ending?
        var delivered = 0
        var wake: (@Sendable () -> Void)?
        var chunks = 0
        /// Resubmissions (of a buffer read by the HTTP writer) and their summed wait to get
        /// onto the device actor's thread.
        var resubmissions = 0
        var submitHopNanoseconds: Int64 = 0
        var isoFailedPackets = 0
    }

    public let options: Options
    /// Whether every buffer came from libusb_dev_mem_alloc.
    public let zeroCopy: Bool
    let handle: USBDeviceHandle
    public let endpoint: UInt8
    private let transfers: [UnsafeMutablePointer<libusb_transfer>]
    private let buffers: TransferBuffers
    private let submitter: @Sendable (@escaping @Sendable () -> Void) -> Void
    private let state: Mutex<State>
    /// The packets of each transfer, for an isochronous endpoint.
    private let iso: IsoLayout?

    /// Allocates the transfers and buffers; nothing is submitted until ``start()``.
    init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, options: Options,
        submitter: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) throws(USBError) {
        self.handle = handle
        self.endpoint = endpoint
        self.options = options
        self.submitter = submitter
        let iso = options.isoPacketSize.map {
            IsoLayout(lengths: Array(repeating: $0, count: options.transferSize / max($0, 1)))
        }
        self.iso = iso
        var transfers: [UnsafeMutablePointer<libusb_transfer>] = []
        for _ in 0..<options.transfers {
            guard let transfer = libusb_alloc_transfer(Int32(iso?.lengths.count ?? 0)) else {
                for transfer in transfers { libusb_free_transfer(transfer) }
                throw .noMemory
            }
            transfers.append(transfer)
        }
        let buffers = TransferBuffers(handle: handle, count: options.transfers, size: options.transferSize)
        self.transfers = transfers
        self.buffers = buffers
        self.zeroCopy = buffers.zeroCopy
        self.state = Mutex(State(inFlight: Array(repeating: false, count: options.transfers)))
        USBMetrics.streamOpened(endpoint: endpoint, zeroCopy: zeroCopy)
        for (index, transfer) in transfers.enumerated() {
            transfer.pointee.dev_handle = handle.pointer
            transfer.pointee.endpoint = endpoint
            transfer.pointee.type = UInt8(type.rawValue)
            transfer.pointee.timeout = options.timeout
            transfer.pointee.length = Int32(options.transferSize)
            transfer.pointee.buffer = buffers.pointers[index]
            transfer.pointee.callback = streamTransferFinished
            iso?.apply(to: transfer)
        }
    }

    deinit {
        let (chunks, delivered, ending, resubmissions, waited) = state.withLock {
            ($0.chunks, $0.delivered, $0.ending, $0.resubmissions, $0.submitHopNanoseconds)
        }
        USBMetrics.streamResubmissions(count: resubmissions, waitNanoseconds: waited)
        USBMetrics.transfers(
            type: transfers.first?.pointee.type ?? 0, endpoint: endpoint, outcome: "completed", bytes: delivered,
            count: chunks)
        if let ending, case .failed(let status) = ending {
            USBMetrics.transfers(type: transfers.first?.pointee.type ?? 0, endpoint: endpoint, outcome: status.rawValue, bytes: 0)
        }
        USBMetrics.streamClosed(endpoint: endpoint)
        for transfer in transfers { libusb_free_transfer(transfer) }
        buffers.free()
    }

    /// Sets the handler called (on any thread) when a ``read(into:)`` that answered `.wait`
    /// would now give something.
    public func onWake(_ wake: @escaping @Sendable () -> Void) {
        state.withLock { $0.wake = wake }
    }

    /// Submits every transfer. Call it on the device actor's thread.
    func start() {
        for index in transfers.indices { submit(index, queuedAt: nil) }
    }

    /// Copies the next bytes into `buffer`. Called by the HTTP writer, on its thread.
    ///
    /// The copy is made after the lock is let go, so that the event thread (a transfer ending)
    /// and the device thread (a resubmission) do not wait behind it: the bytes are in a buffer
    /// that is out of `ready` or not yet consumed, which nothing else touches until this reader
    /// resubmits it, after the copy.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Read {
        var resubmit: Int?
        var copy: (from: UnsafeRawPointer, count: Int)?
        let result = state.withLock { state -> Read in
            while let first = state.ready.first {
                var available = first.count - state.offset
                if let maxBytes = options.maxBytes { available = min(available, maxBytes - state.delivered) }
                let count = min(available, buffer.count)
                if count > 0 {
                    copy = (UnsafeRawPointer(buffers.pointers[first.index] + state.offset), count)
                    state.offset += count
                    state.delivered += count
                }
                let limitReached = options.maxBytes.map { state.delivered >= $0 } ?? false
                if state.offset >= first.count || limitReached {
                    state.ready.removeFirst()
                    state.offset = 0
                    if state.ending == nil && !limitReached { resubmit = first.index }
                }
                if limitReached && state.ending == nil { state.ending = .limit }
                if count > 0 { return .bytes(count) }
                if limitReached { break }
                if let index = resubmit {
                    // An empty transfer (a zero-length packet): send it back and look further.
                    scheduleSubmit(index)
                    resubmit = nil
                }
            }
            if let ending = state.ending { return .end(ending) }
            return .wait
        }
        if let copy { buffer.baseAddress!.copyMemory(from: copy.from, byteCount: copy.count) }
        if let resubmit { scheduleSubmit(resubmit) }
        if case .end = result { cancelInFlight() }
        return result
    }

    /// Ends the stream cleanly: what is already read is the end of it.
    public func finish() { stop(.finished) }

    /// Ends the stream: transfers in flight are cancelled, buffers freed once they are back.
    public func cancel() { stop(.cancelled) }

    /// Ends the stream because its device was unplugged: a failed end (`no_device`), as if
    /// a transfer had said so, whichever comes first.
    public func deviceGone() { stop(.failed(.noDevice)) }

    /// Bytes delivered, transfers completed, and the mean time a resubmission waited to get
    /// onto the device actor's thread.
    public var statistics: (bytes: Int, chunks: Int, meanSubmitHopMicroseconds: Double) {
        state.withLock {
            ($0.delivered, $0.chunks,
             $0.resubmissions == 0 ? 0 : Double($0.submitHopNanoseconds) / Double($0.resubmissions) / 1000)
        }
    }

    /// Isochronous packets that failed so far (their room is dropped from the stream).
    public var isoFailedPackets: Int { state.withLock { $0.isoFailedPackets } }

    private func stop(_ ending: Ending) {
        let wake = state.withLock { state -> (@Sendable () -> Void)? in
            if state.ending == nil { state.ending = ending }
            return state.wake
        }
        cancelInFlight()
        wake?()
    }

    private func cancelInFlight() {
        let flying = state.withLock { $0.inFlight }
        for (index, inFlight) in flying.enumerated() where inFlight { _ = libusb_cancel_transfer(transfers[index]) }
    }

    private func scheduleSubmit(_ index: Int) {
        let queued = ContinuousClock.now
        submitter { [self] in submit(index, queuedAt: queued) }
    }

    /// On the device actor's thread.
    private func submit(_ index: Int, queuedAt: ContinuousClock.Instant?) {
        let failure = state.withLock { state -> (@Sendable () -> Void)? in
            if let queuedAt {
                let hop = ContinuousClock.now - queuedAt
                state.submitHopNanoseconds += hop.components.seconds * 1_000_000_000 + hop.components.attoseconds / 1_000_000_000
                state.resubmissions += 1
            }
            guard state.ending == nil else { return nil }
            let retained = Unmanaged.passRetained(self)
            transfers[index].pointee.user_data = retained.toOpaque()
            let result = libusb_submit_transfer(transfers[index])
            guard result == 0 else {
                retained.release()
                state.ending = .refused(USBError(result))
                return state.wake
            }
            state.inFlight[index] = true
            return nil
        }
        if let failure {
            cancelInFlight()
            failure()
        }
    }

    /// On the event thread, once per submitted transfer.
    fileprivate func finished(_ transfer: UnsafeMutablePointer<libusb_transfer>) {
        guard let index = transfers.firstIndex(of: transfer) else { return }
        let status = TransferStatus(transfer.pointee.status)
        var count = Int(transfer.pointee.actual_length)
        var isoFailed = 0
        if let iso {
            // Each packet's bytes sit at the packet's own offset: pack them.
            let packets = iso.results(of: transfer)
            isoFailed = packets.count(where: { $0.status != .completed })
            count = IsoLayout.pack(packets, in: buffers.pointers[index])
        }
        let (wake, failed) = state.withLock { state -> ((@Sendable () -> Void)?, Bool) in
            state.inFlight[index] = false
            state.isoFailedPackets += isoFailed
            state.chunks += 1
            switch status {
            case .completed:
                state.ready.append((index, count))
            case .cancelled:
                if count > 0 && state.ending == nil { state.ready.append((index, count)) }
            default:
                if count > 0 { state.ready.append((index, count)) }
                if state.ending == nil { state.ending = .failed(status) }
                return (state.wake, true)
            }
            return (state.wake, false)
        }
        if failed { cancelInFlight() }
        wake?()
    }
}

/// libusb_transfer_cb_fn of every ``BulkInStream`` transfer: `user_data` holds the stream,
/// retained at submission.
private let streamTransferFinished: libusb_transfer_cb_fn = { transfer in
    guard let transfer, let userData = transfer.pointee.user_data else { return }
    Unmanaged<BulkInStream>.fromOpaque(userData).takeRetainedValue().finished(transfer)
}
