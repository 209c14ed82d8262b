import EventLoop

/// One URB for its whole life: made by the device's ``DeviceIO`` (libusb_alloc_transfer, with
/// room for its isochronous packets), pointed at a buffer (its own, or a stream's that it
/// borrows), submitted (the transfer keeps itself alive while the kernel holds it), cancelled,
/// and freed when released. Each end of a submission goes to `completion`. Single transfers
/// (``PendingTransfer``), streams and the URB channel are all made of these.
///
/// Lives on the event loop: made, submitted and completed there (checked). ``cancel()`` is the
/// one entry point that may be called from elsewhere (a task's cancellation handler): it hops
/// to the loop. A cancel that comes before the submission is remembered: the submission is then
/// refused as cancelled, so that no URB escapes a cancelled request.
final class Transfer: @unchecked Sendable {
    /// What a submission did.
    enum Submission: Equatable {
        case submitted
        /// The device refused it; no URB was queued.
        case refused(USBError)
        /// ``cancel()`` came first; nothing was queued.
        case cancelled
    }

    private enum Phase {
        case idle
        case inFlight
        /// Cancelled while idle: the next submission is refused.
        case cancelledIdle
    }

    let loop: EventLoop
    let endpoint: UInt8
    let type: TransferType
    /// The bytes the kernel reads from or writes into (for control transfers the 8-byte setup
    /// packet first).
    let buffer: UnsafeMutableRawBufferPointer
    /// Owned memory to give back when released: the heap's, or the device's DMA memory.
    private let ownedBuffer: TransferMemory?
    private var urb: (any URB)!
    private var phase = Phase.idle
    private let completion: (Transfer) -> Void

    /// A URB for `spec` made by `io`. With `buffer` nil the transfer gets memory of its own of
    /// `spec.length` bytes (from `memory`); else it borrows `buffer`, which its owner keeps
    /// until the transfer is released. `completion` runs on the loop once per submission.
    init(
        io: any DeviceIO, spec: URBSpec, buffer: UnsafeMutableRawBufferPointer? = nil,
        memory: TransferMemory.Kind = .heap, loop: EventLoop, completion: @escaping (Transfer) -> Void
    ) throws(USBError) {
        self.loop = loop
        self.endpoint = spec.endpoint
        self.type = spec.type
        self.completion = completion
        if let buffer {
            self.buffer = buffer
            self.ownedBuffer = nil
        } else {
            let owned = TransferMemory(io: io, size: spec.length, kind: memory)
            self.buffer = owned.bytes
            self.ownedBuffer = owned
        }
        urb = try io.makeURB(spec, buffer: self.buffer) { [unowned(unsafe) self] in self.ended() }
    }

    deinit {
        urb = nil
        ownedBuffer?.free()
    }

    /// Whether the buffer is the device's DMA memory (libusb_dev_mem_alloc).
    var zeroCopy: Bool { ownedBuffer?.dma ?? false }

    /// The length to move (at most the buffer), before submitting.
    var length: Int {
        get { urb.length }
        set {
            precondition(newValue <= buffer.count)
            urb.length = newValue
        }
    }

    /// How the last submission ended, read in `completion`.
    var status: TransferStatus { urb.status }
    var actualLength: Int { urb.actualLength }

    /// Sets the packet lengths of an isochronous transfer, before submitting.
    func setIsoPackets(_ layout: IsoLayout) {
        urb.setIsoPacketLengths(layout.lengths)
        urb.length = layout.totalLength
    }

    /// Each packet's outcome, once an isochronous transfer has ended.
    func isoResults(_ layout: IsoLayout) -> [IsoPacketResult] {
        urb.isoPacketResults(count: layout.lengths.count)
    }

    /// Submits the URB, on the loop. While it is in flight the transfer keeps itself alive.
    func submit() -> Submission {
        loop.preconditionInEventLoop()
        switch phase {
        case .inFlight: return .refused(.busy)
        case .cancelledIdle: return .cancelled
        case .idle: break
        }
        let retained = Unmanaged.passRetained(self)
        if let error = urb.submit() {
            retained.release()
            return .refused(error)
        }
        phase = .inFlight
        return .submitted
    }

    /// Cancels the transfer if it is in flight (its completion then reports `cancelled`, or
    /// `completed` if it raced), or keeps it from being submitted. From any thread: off the
    /// loop it is queued there.
    func cancel() {
        guard loop.inEventLoop else {
            loop.execute { [self] in cancel() }
            return
        }
        switch phase {
        case .idle: phase = .cancelledIdle
        case .inFlight: urb.cancel()
        case .cancelledIdle: break
        }
    }

    /// On the loop, once per submission: releases what the submission retained, last.
    private func ended() {
        defer { Unmanaged.passUnretained(self).release() }
        phase = .idle
        completion(self)
    }
}

/// Memory for a transfer's buffer: the device's DMA memory (libusb_dev_mem_alloc, so the URB's
/// data is not copied between user and kernel space) where asked for and possible, else the
/// heap. ``free()`` must come after the transfers using it have ended.
struct TransferMemory: @unchecked Sendable {
    enum Kind { case heap, dma }

    let bytes: UnsafeMutableRawBufferPointer
    /// Whether it came from ``DeviceIO/allocateDMA(_:)``.
    let dma: Bool
    private let io: any DeviceIO

    init(io: any DeviceIO, size: Int, kind: Kind) {
        self.io = io
        let count = max(size, 1)
        if kind == .dma, let mapped = io.allocateDMA(count) {
            bytes = UnsafeMutableRawBufferPointer(start: mapped, count: size)
            dma = true
        } else {
            bytes = UnsafeMutableRawBufferPointer(
                start: UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16), count: size)
            dma = false
        }
    }

    func free() {
        guard let base = bytes.baseAddress else { return }
        if dma { io.freeDMA(base, size: max(bytes.count, 1)) } else { base.deallocate() }
    }
}
