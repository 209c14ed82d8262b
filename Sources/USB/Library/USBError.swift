import CLibUSB
import Glibc

/// A failed libusb call (`enum libusb_error`). Transfer outcomes such as a stall or a
/// timeout on a transfer are not call errors and are reported apart from these.
public struct USBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The negative `libusb_error` code.
    public let rawValue: Int32

    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public static let io = USBError(LIBUSB_ERROR_IO.rawValue)
    public static let invalidParameter = USBError(LIBUSB_ERROR_INVALID_PARAM.rawValue)
    public static let access = USBError(LIBUSB_ERROR_ACCESS.rawValue)
    public static let noDevice = USBError(LIBUSB_ERROR_NO_DEVICE.rawValue)
    public static let notFound = USBError(LIBUSB_ERROR_NOT_FOUND.rawValue)
    public static let busy = USBError(LIBUSB_ERROR_BUSY.rawValue)
    public static let timeout = USBError(LIBUSB_ERROR_TIMEOUT.rawValue)
    public static let overflow = USBError(LIBUSB_ERROR_OVERFLOW.rawValue)
    public static let pipe = USBError(LIBUSB_ERROR_PIPE.rawValue)
    public static let interrupted = USBError(LIBUSB_ERROR_INTERRUPTED.rawValue)
    public static let noMemory = USBError(LIBUSB_ERROR_NO_MEM.rawValue)
    public static let notSupported = USBError(LIBUSB_ERROR_NOT_SUPPORTED.rawValue)
    public static let other = USBError(LIBUSB_ERROR_OTHER.rawValue)

    /// The libusb name, e.g. "LIBUSB_ERROR_PIPE" (libusb_error_name).
    public var name: String { String(cString: libusb_error_name(rawValue)) }

    public var description: String { "\(name): \(String(cString: libusb_strerror(rawValue)))" }

    /// The one place a libusb return code turns into a Swift error: negative codes throw,
    /// anything else is returned.
    @discardableResult
    static func check(_ result: Int32) throws(USBError) -> Int32 {
        if result < 0 { throw USBError(result) }
        return result
    }

    /// The error libusb itself reports for a failed system call with `errno` (as its Linux
    /// backend translates them): the one place errno becomes a ``USBError``.
    init(errno: Int32) {
        switch errno {
        case EACCES, EPERM: self = .access
        case ENOENT, ENODEV, ENXIO: self = .noDevice
        case EBUSY: self = .busy
        case ENOMEM: self = .noMemory
        case EINVAL: self = .invalidParameter
        case ETIMEDOUT: self = .timeout
        case EINTR: self = .interrupted
        default: self = .io
        }
    }

    /// See ``check(_:)-(Int32)``, for calls that return a `ssize_t`.
    @discardableResult
    static func check(_ result: Int) throws(USBError) -> Int {
        if result < 0 { throw USBError(Int32(truncatingIfNeeded: result)) }
        return result
    }
}
