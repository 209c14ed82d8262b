import Consoles
import LinuxSystem

/// A console as the API shows it.
struct ConsoleModel: Encodable, Sendable {
    struct LineModel: Encodable, Sendable {
        var baud: Int
        var dataBits: Int
        var parity: String
        var stopBits: Int
        var flow: String
    }
    struct ModemModel: Encodable, Sendable {
        var dtr, rts, cts, dsr, cd, ri: Bool
    }
    struct OutputModel: Encodable, Sendable {
        /// Offset of the oldest byte kept, and of the next byte to come.
        var start: UInt64
        var end: UInt64
        var capacity: Int
    }

    var interface: Int
    var tty: String
    var driver: String
    /// "open", or "unavailable" with `reason` (the daemon cannot open the tty).
    var state: String
    var reason: String?
    var line: LineModel?
    var modem: ModemModel?
    var output: OutputModel?
    var readers: Int?
    var writerHeld: Bool?

    /// An open console, read on its loop.
    init(_ console: Console) {
        interface = Int(console.info.interface)
        tty = console.info.tty
        driver = console.info.driver
        state = console.isGone ? "gone" : "open"
        line = (try? console.line()).map(Self.line)
        modem = (try? console.modemLines()).map {
            ModemModel(
                dtr: $0.contains(.dtr), rts: $0.contains(.rts), cts: $0.contains(.cts), dsr: $0.contains(.dsr),
                cd: $0.contains(.cd), ri: $0.contains(.ri))
        }
        output = OutputModel(start: console.ring.start, end: console.ring.end, capacity: console.ring.capacity)
        readers = console.readerCount
        writerHeld = console.writer != nil
    }

    /// One the daemon could not open.
    init(_ info: ConsoleInfo, reason: String) {
        interface = Int(info.interface)
        tty = info.tty
        driver = info.driver
        state = "unavailable"
        self.reason = reason
    }

    static func line(_ line: Terminal.Line) -> LineModel {
        let parity: String =
            switch line.parity {
            case .none: "none"
            case .even: "even"
            case .odd: "odd"
            case .mark: "mark"
            case .space: "space"
            }
        let flow = line.hardwareFlow ? "rtscts" : line.softwareFlow ? "xonxoff" : "none"
        return LineModel(baud: line.baud, dataBits: line.dataBits, parity: parity, stopBits: line.stopBits, flow: flow)
    }
}

/// `GET /v1/devices/{id}/consoles`.
struct ConsoleList: Encodable, Sendable {
    var device: String
    var consoles: [ConsoleModel]
}
