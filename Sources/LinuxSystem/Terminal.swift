import CLinuxTTY
import Glibc
import SystemPackage

/// A terminal device the daemon serves as a console (a USB serial adapter's tty): open(2),
/// read(2) and write(2) without blocking, and its line and modem lines through termios2 and
/// the TIOCM ioctls (CLinuxTTY's functions: `usbhttpd_tty_*`).
public struct Terminal: Sendable {
    public let descriptor: FileDescriptor

    /// A line's settings (struct usbhttpd_tty_line).
    public struct Line: Sendable, Equatable {
        public enum Parity: Character, Sendable, CaseIterable {
            case none = "n", even = "e", odd = "o", mark = "m", space = "s"
        }
        public var baud: Int
        public var dataBits: Int
        public var parity: Parity
        public var stopBits: Int
        /// RTS/CTS flow control.
        public var hardwareFlow: Bool
        /// XON/XOFF flow control.
        public var softwareFlow: Bool

        public init(baud: Int, dataBits: Int = 8, parity: Parity = .none, stopBits: Int = 1, hardwareFlow: Bool = false, softwareFlow: Bool = false) {
            self.baud = baud
            self.dataBits = dataBits
            self.parity = parity
            self.stopBits = stopBits
            self.hardwareFlow = hardwareFlow
            self.softwareFlow = softwareFlow
        }
    }

    /// The modem lines (TIOCM_*).
    public struct ModemLines: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let dtr = ModemLines(rawValue: Int32(USBHTTPD_TTY_DTR))
        public static let rts = ModemLines(rawValue: Int32(USBHTTPD_TTY_RTS))
        public static let cts = ModemLines(rawValue: Int32(USBHTTPD_TTY_CTS))
        public static let cd = ModemLines(rawValue: Int32(USBHTTPD_TTY_CD))
        public static let ri = ModemLines(rawValue: Int32(USBHTTPD_TTY_RI))
        public static let dsr = ModemLines(rawValue: Int32(USBHTTPD_TTY_DSR))
    }

    /// What a read found.
    public enum Read: Sendable, Equatable {
        case bytes(Int)
        /// Nothing now (EAGAIN).
        case empty
        /// The terminal is gone (EOF after a hang-up, EIO when its device left).
        case gone
    }

    /// open(2) with O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC (never the daemon's controlling
    /// terminal), then raw mode (``usbhttpd_tty_make_raw``). The path must be under /dev.
    public static func open(_ path: String) throws(Errno) -> Terminal {
        let descriptor = FileDescriptor(
            rawValue: try valueOrErrno { Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) })
        do {
            try nothingOrErrno { usbhttpd_tty_make_raw(descriptor.rawValue) }
        } catch {
            try? descriptor.closeDescriptor()
            throw error
        }
        return Terminal(descriptor: descriptor)
    }

    /// read(2) into `buffer`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Read {
        do {
            let count = try valueOrErrno { Glibc.read(descriptor.rawValue, buffer.baseAddress, buffer.count) }
            return count == 0 ? .gone : .bytes(count)
        } catch where error == .wouldBlock {
            return .empty
        } catch where error == .ioError || error == .noSuchAddressOrDevice {
            return .gone
        }
    }

    /// write(2) of `bytes`: how many it took, 0 when the terminal takes nothing now (EAGAIN).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        do {
            return try valueOrErrno { Glibc.write(descriptor.rawValue, bytes.baseAddress, bytes.count) }
        } catch where error == .wouldBlock {
            return 0
        }
    }

    /// The line's settings (TCGETS2).
    public func line() throws(Errno) -> Line {
        var raw = usbhttpd_tty_line()
        try nothingOrErrno { usbhttpd_tty_get_line(descriptor.rawValue, &raw) }
        return Line(
            baud: Int(raw.baud), dataBits: Int(raw.data_bits),
            parity: Line.Parity(rawValue: Character(UnicodeScalar(UInt8(bitPattern: raw.parity)))) ?? .none,
            stopBits: Int(raw.stop_bits), hardwareFlow: raw.rtscts != 0, softwareFlow: raw.xonxoff != 0)
    }

    /// New line settings (TCSETS2, any baud rate through BOTHER). EINVAL for values the driver
    /// or the kernel refuses.
    public func setLine(_ line: Line) throws(Errno) {
        var raw = usbhttpd_tty_line(
            baud: UInt32(clamping: line.baud), data_bits: Int32(line.dataBits),
            parity: CChar(bitPattern: line.parity.rawValue.asciiValue ?? UInt8(ascii: "n")),
            stop_bits: Int32(line.stopBits), rtscts: line.hardwareFlow ? 1 : 0, xonxoff: line.softwareFlow ? 1 : 0)
        try nothingOrErrno { usbhttpd_tty_set_line(descriptor.rawValue, &raw) }
    }

    /// The modem lines now (TIOCMGET).
    public func modemLines() throws(Errno) -> ModemLines {
        var bits: Int32 = 0
        try nothingOrErrno { usbhttpd_tty_modem_get(descriptor.rawValue, &bits) }
        return ModemLines(rawValue: bits)
    }

    /// Raises `set` and lowers `clear` (TIOCMBIS, TIOCMBIC).
    public func changeModemLines(set: ModemLines, clear: ModemLines) throws(Errno) {
        try nothingOrErrno { usbhttpd_tty_modem_change(descriptor.rawValue, set.rawValue, clear.rawValue) }
    }

    /// Starts or ends a break (TIOCSBRK, TIOCCBRK).
    public func setBreak(_ on: Bool) throws(Errno) {
        try nothingOrErrno { usbhttpd_tty_break(descriptor.rawValue, on ? 1 : 0) }
    }

    public func close() throws(Errno) {
        try descriptor.closeDescriptor()
    }
}
