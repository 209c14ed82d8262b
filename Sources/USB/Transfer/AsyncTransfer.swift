import EventLoop

/// What a client asks one asynchronous transfer to be (the URB channel's SUBMIT): libusb's own
/// terms, so that a libusb program's transfer maps onto it field by field.
public struct AsyncTransferRequest: Sendable, Equatable {
    public var type: TransferType
    /// The endpoint's address, with its direction bit (0x00 for control).
    public var endpoint: UInt8
    public var flags: URBFlags
    /// Milliseconds; 0: no timeout.
    public var timeout: UInt32
    /// The data's length: room to read (IN), bytes to send (OUT); for control, the data stage.
    public var length: Int
    /// A control transfer's setup packet.
    public var setup: ControlSetup?
    /// An isochronous transfer's packet lengths (adding up to `length`).
    public var isoPackets: [Int]

    public init(
        type: TransferType, endpoint: UInt8, flags: URBFlags = [], timeout: UInt32, length: Int,
        setup: ControlSetup? = nil, isoPackets: [Int] = []
    ) {
        self.type = type
        self.endpoint = endpoint
        self.flags = flags
        self.timeout = timeout
        self.length = length
        self.setup = setup
        self.isoPackets = isoPackets
    }

    /// Whether data comes from the device (control: the setup packet's direction).
    public var isIn: Bool {
        if type == .control { return setup?.direction == .in }
        return endpoint & 0x80 != 0
    }
}

/// One transfer a client submits and waits for on its own (the URB channel's): its memory
/// (the device's DMA memory where the kernel gives it, so an OUT payload is written straight
/// where the kernel takes it and IN data sent straight from where the kernel put it) counted
/// against the daemon's usbfs share until it is released; many in flight on one endpoint,
/// each completing on its own.
///
/// Lives on the event loop (the device actor's executor): made by
/// ``DeviceSession/asyncTransfer(_:pool:completion:)``, filled, submitted and completed there.
/// ``cancel()`` may come from anywhere and hops there.
public final class AsyncTransfer: @unchecked Sendable {
    public let request: AsyncTransferRequest
    private var transfer: Transfer!
    private let budget: UsbfsShare
    /// Bytes of heap memory reserved from the usbfs share (pooled memory is the pool's).
    private let reserved: Int
    /// Memory from the pool, given back when released.
    private let pooled: TransferMemory?
    private let pool: TransferMemoryPool
    private let layout: IsoLayout?
    private let completion: (AsyncTransfer) -> Void
    private var submitted = false
    /// Who keeps the timeout (nil: libusb does, or there is none).
    private let timeouts: TransferTimeouts?
    /// The timeout passed and the URB was cancelled for it: its end says TIMED_OUT.
    private var timedOut = false

    /// Transfers of at most this many bytes (setup packet included) use the heap: a copy of a
    /// few bytes costs less than a mapping.
    static let heapLimit = 4096 + 8

    /// With `timeouts`, the daemon keeps the request's timeout (``TransferTimeouts``), not libusb.
    init(
        io: any DeviceIO, request: AsyncTransferRequest, loop: EventLoop, budget: UsbfsShare, pool: TransferMemoryPool,
        timeouts: TransferTimeouts? = nil, completion: @escaping (AsyncTransfer) -> Void
    ) throws {
        let setupLength = request.type == .control ? 8 : 0
        let total = setupLength + request.length
        let pooled = total > Self.heapLimit ? try pool.take(total) : nil
        if pooled == nil { try budget.reserve(total) }
        self.budget = budget
        self.reserved = pooled == nil ? total : 0
        self.pooled = pooled
        self.pool = pool
        self.request = request
        self.completion = completion
        self.timeouts = request.timeout > 0 ? timeouts : nil
        self.layout = request.type == .isochronous ? IsoLayout(lengths: request.isoPackets) : nil
        do {
            transfer = try Transfer(
                io: io,
                spec: URBSpec(
                    endpoint: request.endpoint, type: request.type, length: total,
                    timeout: timeouts != nil ? 0 : request.timeout,
                    flags: request.flags, isoPackets: request.isoPackets.count),
                buffer: pooled.map { UnsafeMutableRawBufferPointer(rebasing: $0.bytes[0..<total]) },
                loop: loop
            ) { [unowned(unsafe) self] _ in self.ended() }
        } catch {
            if let pooled { pool.give(pooled) } else { budget.release(total) }
            throw error
        }
        if let setup = request.setup { transfer.buffer.copyBytes(from: setup.bytes) }
        if let layout { transfer.setIsoPackets(layout) }
    }

    deinit {
        transfer = nil
        if let pooled { pool.give(pooled) }
        budget.release(reserved)
    }

    /// The data area: where OUT data is written before ``submit()``, and IN data found after
    /// the completion (control: after the setup packet).
    public var data: UnsafeMutableRawBufferPointer {
        let offset = request.type == .control ? 8 : 0
        return UnsafeMutableRawBufferPointer(rebasing: transfer.buffer[offset..<offset + request.length])
    }

    /// Whether the memory is the device's DMA memory (no copy between user and kernel space).
    public var zeroCopy: Bool { pooled?.dma ?? false }

    /// Submits the URB; the completion runs on the loop once it ends. While in flight the
    /// transfer keeps itself alive.
    public func submit() throws(USBError) {
        switch transfer.submit() {
        case .submitted:
            submitted = true
            Unmanaged.passUnretained(self).retain()
            timeouts?.add(self, after: request.timeout)
        case .refused(let error): throw error
        case .cancelled: throw .interrupted
        }
    }

    /// Cancels it if in flight (the completion says cancelled, or completed if it raced), or
    /// keeps it from being submitted. From any thread.
    public func cancel() { transfer.cancel() }

    /// How it ended, read in the completion.
    public var status: TransferStatus {
        let status = transfer.status
        return timedOut && status == .cancelled ? .timedOut : status
    }

    /// Its time is up (``TransferTimeouts``): the URB is cancelled, and its end says TIMED_OUT.
    func timeUp() {
        timedOut = true
        transfer.cancel()
    }
    /// Bytes that moved (for isochronous, in all packets; for control, the data stage).
    public var actualLength: Int {
        layout == nil ? transfer.actualLength : isoResults.reduce(0) { $0 + $1.actualLength }
    }

    /// Each packet's outcome, once an isochronous transfer ended; IN packets' bytes are then
    /// packed at the front of ``data`` (``packedLength`` of them).
    public private(set) var isoResults: [IsoPacketResult] = []
    public private(set) var packedLength = 0

    private func ended() {
        timeouts?.remove(self)
        if let layout {
            isoResults = transfer.isoResults(layout)
            if request.isIn, let base = transfer.buffer.baseAddress {
                packedLength = IsoLayout.pack(isoResults, in: base)
            }
        }
        USBMetrics.transfers(
            type: request.type, endpoint: request.endpoint | (request.isIn ? 0x80 : 0), status: status,
            bytes: actualLength)
        submitted = false
        completion(self)
        Unmanaged.passUnretained(self).release()
    }
}
