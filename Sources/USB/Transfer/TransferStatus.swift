import CLibUSB

/// How a transfer ended (`enum libusb_transfer_status`). An outcome, not a call error:
/// a stall or a timeout is something the device did, reported apart from ``USBError``.
public enum TransferStatus: String, Sendable, Equatable, CaseIterable {
    /// LIBUSB_TRANSFER_COMPLETED: done, possibly with less data than asked for (a short read).
    case completed
    /// LIBUSB_TRANSFER_ERROR
    case error
    /// LIBUSB_TRANSFER_TIMED_OUT
    case timedOut = "timed_out"
    /// LIBUSB_TRANSFER_CANCELLED
    case cancelled
    /// LIBUSB_TRANSFER_STALL: a halted bulk/interrupt endpoint, or a control request the device refused.
    case stall
    /// LIBUSB_TRANSFER_NO_DEVICE
    case noDevice = "no_device"
    /// LIBUSB_TRANSFER_OVERFLOW: the device sent more than asked for (babble).
    case overflow

    init(_ status: libusb_transfer_status) {
        switch status {
        case LIBUSB_TRANSFER_COMPLETED: self = .completed
        case LIBUSB_TRANSFER_TIMED_OUT: self = .timedOut
        case LIBUSB_TRANSFER_CANCELLED: self = .cancelled
        case LIBUSB_TRANSFER_STALL: self = .stall
        case LIBUSB_TRANSFER_NO_DEVICE: self = .noDevice
        case LIBUSB_TRANSFER_OVERFLOW: self = .overflow
        default: self = .error
        }
    }

    /// Its libusb_transfer_status value (LIBUSB_TRANSFER_COMPLETED 0 … LIBUSB_TRANSFER_OVERFLOW 6),
    /// as the URB channel carries it; also its index in `allCases`, declared in libusb's order.
    public var libusbCode: UInt8 {
        switch self {
        case .completed: UInt8(LIBUSB_TRANSFER_COMPLETED.rawValue)
        case .error: UInt8(LIBUSB_TRANSFER_ERROR.rawValue)
        case .timedOut: UInt8(LIBUSB_TRANSFER_TIMED_OUT.rawValue)
        case .cancelled: UInt8(LIBUSB_TRANSFER_CANCELLED.rawValue)
        case .stall: UInt8(LIBUSB_TRANSFER_STALL.rawValue)
        case .noDevice: UInt8(LIBUSB_TRANSFER_NO_DEVICE.rawValue)
        case .overflow: UInt8(LIBUSB_TRANSFER_OVERFLOW.rawValue)
        }
    }

    /// A read that ends so after some bytes came keeps them for the next read of the endpoint
    /// (``DeviceSession/read(_:length:timeout:logger:)``): the device sent them and nothing
    /// went wrong with them; only the wait for the rest ended (a timeout, or a client that left).
    public var keepsWhatCame: Bool { self == .timedOut || self == .cancelled }
}

/// What a finished transfer reports: its status and the bytes that moved. For an IN
/// transfer `data` holds what arrived (`actualLength` bytes); for OUT it is empty.
public struct TransferResult: Sendable, Equatable {
    public var status: TransferStatus
    public var actualLength: Int
    public var data: [UInt8]

    public init(status: TransferStatus, actualLength: Int, data: [UInt8] = []) {
        self.status = status
        self.actualLength = actualLength
        self.data = data
    }
}
