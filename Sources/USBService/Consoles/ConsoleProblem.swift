import HTTPServer

/// What a console request can meet besides a device's problems.
enum ConsoleProblem: HTTPResponseError, Sendable, Equatable {
    /// The interface has no tty (no serial driver bound, or not a serial function).
    case notFound(device: String, interface: UInt8)
    /// The daemon found the tty but cannot open it (its permissions).
    case unavailable(device: String, tty: String, reason: String)
    /// Another client types on it now.
    case writerBusy(device: String, tty: String)
    /// It went away while the request ran (its adapter unplugged, its driver unbound).
    case gone(device: String, tty: String)
    /// The tty did not take the input within the timeout (flow control holding it back).
    case inputTimedOut(device: String, tty: String, written: Int, of: Int)
    /// The driver refused the line settings.
    case lineRefused(device: String, tty: String, reason: String)

    var status: Int {
        switch self {
        case .notFound: 404
        case .unavailable: 503
        case .writerBusy: 409
        case .gone: 410
        case .inputTimedOut: 504
        case .lineRefused: 400
        }
    }

    var code: String {
        switch self {
        case .notFound: "console-not-found"
        case .unavailable: "console-unavailable"
        case .writerBusy: "console-writer-busy"
        case .gone: "console-gone"
        case .inputTimedOut: "console-input-timeout"
        case .lineRefused: "console-line-refused"
        }
    }

    var title: String {
        switch self {
        case .notFound: "No console on this interface"
        case .unavailable: "Console cannot be opened"
        case .writerBusy: "Another client types on this console"
        case .gone: "Console gone"
        case .inputTimedOut: "Console did not take the input in time"
        case .lineRefused: "Line settings refused"
        }
    }

    var detail: String {
        switch self {
        case .notFound(let device, let interface):
            "Interface \(interface) of \(device) has no serial console (no tty: not a serial function, or its driver is not bound)."
        case .unavailable(let device, let tty, let reason):
            "The console of \(device) (\(tty)) cannot be opened by the daemon: \(reason)."
        case .writerBusy(let device, let tty):
            "Another client holds the console of \(device) (\(tty)) for writing; reading it is open to all. Try again when it lets go."
        case .gone(let device, let tty):
            "The console of \(device) (\(tty)) went away: its adapter was unplugged or its driver unbound."
        case .inputTimedOut(let device, let tty, let written, let total):
            "The console of \(device) (\(tty)) took \(written) of \(total) bytes before the timeout (flow control may hold it back); the rest was not sent."
        case .lineRefused(let device, let tty, let reason):
            "The driver of \(device)'s console (\(tty)) refused the line settings: \(reason)."
        }
    }
}
