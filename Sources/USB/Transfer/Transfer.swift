import CLibUSB
import Synchronization

/// One `struct libusb_transfer` for its whole life: allocated (libusb_alloc_transfer, with
/// room for its isochronous packets), pointed at a buffer (its own, or a stream's that it
/// borrows), submitted (libusb_submit_transfer; the transfer keeps itself alive while the
/// kernel holds it), cancelled (libusb_cancel_transfer), and freed (libusb_free_transfer) when
/// released. Each end of a submission goes to `completion`, on the thread that handles
/// libusb's events. Single transfers (``PendingTransfer``) and streams alike are made of these.
///
/// A cancel that comes before the submission is remembered: the submission is then refused
/// as cancelled, so that no URB escapes a cancelled request.
final class Transfer: @unchecked Sendable {
    /// What a submission did.
    enum Submission: Equatable {
        case submitted
        /// libusb refused it; no URB was queued.
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

    let pointer: UnsafeMutablePointer<libusb_transfer>
    /// Keeps the device open while the kernel holds the transfer.
    let handle: USBDeviceHandle
    /// The bytes the kernel reads from or writes into (for control transfers the 8-byte setup
    /// packet first).
    let buffer: UnsafeMutableRawBufferPointer
    private let ownsBuffer: Bool
    private let phase = Mutex(Phase.idle)
    private let completion: @Sendable (Transfer) -> Void

    /// libusb_alloc_transfer with room for `isoPackets` packets, filled for `endpoint`. With
    /// `buffer` nil the transfer gets a buffer of its own of `length` bytes; else it borrows
    /// `buffer`, which its owner keeps until the transfer is released.
    init(
        handle: USBDeviceHandle, endpoint: UInt8, type: libusb_transfer_type, length: Int, timeout: UInt32,
        flags: libusb_transfer_flags? = nil, isoPackets: Int = 0, buffer: UnsafeMutableRawBufferPointer? = nil,
        completion: @escaping @Sendable (Transfer) -> Void
    ) throws(USBError) {
        guard let pointer = libusb_alloc_transfer(Int32(isoPackets)) else { throw .noMemory }
        self.pointer = pointer
        self.handle = handle
        self.ownsBuffer = buffer == nil
        self.buffer = buffer ?? UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 16)
        self.completion = completion
        pointer.pointee.dev_handle = handle.pointer
        pointer.pointee.endpoint = endpoint
        pointer.pointee.type = UInt8(type.rawValue)
        pointer.pointee.timeout = timeout
        pointer.pointee.length = Int32(length)
        pointer.pointee.buffer = self.buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        pointer.pointee.flags = UInt8(flags?.rawValue ?? 0)
        pointer.pointee.callback = transferEnded
    }

    deinit {
        libusb_free_transfer(pointer)
        if ownsBuffer { buffer.deallocate() }
    }

    var endpoint: UInt8 { pointer.pointee.endpoint }
    var type: UInt8 { pointer.pointee.type }

    /// The length to move (at most the buffer), before submitting.
    var length: Int {
        get { Int(pointer.pointee.length) }
        set {
            precondition(newValue <= buffer.count)
            pointer.pointee.length = Int32(newValue)
        }
    }

    /// How the last submission ended, read in `completion`.
    var status: TransferStatus { TransferStatus(pointer.pointee.status) }
    var actualLength: Int { Int(pointer.pointee.actual_length) }

    /// libusb_submit_transfer, under the transfer's lock: a concurrent ``cancel()`` sees
    /// either "not yet submitted" (and prevents it) or "in flight" (and cancels it).
    func submit() -> Submission {
        phase.withLock { phase in
            switch phase {
            case .inFlight: return .refused(.busy)
            case .cancelledIdle: return .cancelled
            case .idle: break
            }
            let retained = Unmanaged.passRetained(self)
            pointer.pointee.user_data = retained.toOpaque()
            let result = libusb_submit_transfer(pointer)
            guard result == 0 else {
                retained.release()
                return .refused(USBError(result))
            }
            phase = .inFlight
            return .submitted
        }
    }

    /// Cancels the transfer if it is in flight (its completion then reports `cancelled`, or
    /// `completed` if it raced), or keeps it from being submitted.
    func cancel() {
        let inFlight = phase.withLock { phase -> Bool in
            switch phase {
            case .idle:
                phase = .cancelledIdle
                return false
            case .inFlight: return true
            case .cancelledIdle: return false
            }
        }
        // Outside the lock: libusb may call back at once. A transfer that ended meanwhile
        // answers LIBUSB_ERROR_NOT_FOUND, which is fine.
        if inFlight { _ = libusb_cancel_transfer(pointer) }
    }

    /// Called once per submission by libusb, on its event thread.
    fileprivate func ended() {
        phase.withLock { $0 = .idle }
        completion(self)
    }
}

/// libusb_transfer_cb_fn of every ``Transfer``: `user_data` holds it, retained at submission.
private let transferEnded: libusb_transfer_cb_fn = { transfer in
    guard let userData = transfer?.pointee.user_data else { return }
    Unmanaged<Transfer>.fromOpaque(userData).takeRetainedValue().ended()
}
