import Consoles
import HTTPRouting
import HTTPServer
import LinuxSystem
import SystemPackage
import USB

/// A device's serial consoles (``Consoles``): listed, their output read (kept and followed),
/// typed on, their line and modem lines set, a break sent, and all of it over a WebSocket.
/// `{interface}` is the USB interface whose driver made the tty.
struct ConsoleRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        let base = "/v1/devices/{id}/consoles"
        router.device("GET", base, requires: Access.read, DeviceRoute(query: [], lease: .none), context: context, list)
        router.device(
            "GET", base + "/{interface}/output", requires: Access.readHeldOpen,
            DeviceRoute(
                query: ["from", "follow", "max_bytes"], lease: .none,
                parse: { request in
                    (from: try Self.offset(request.query), follow: try request.query.boolean("follow") ?? false,
                     maxBytes: try request.query.integer("max_bytes", in: 1...Int(Int32.max)))
                }),
            context: context, output)
        router.device(
            "POST", base + "/{interface}/input", requires: Access.transfer,
            DeviceRoute(
                query: ["timeout_ms"], lease: .interface,
                parse: { [limits = context.limits] in try $0.query.integer("timeout_ms", in: 1...limits.maxTimeoutMs) ?? 5000 }),
            context: context, input)
        router.device(
            "PUT", base + "/{interface}/line", requires: Access.transfer,
            DeviceRoute(
                query: ["baud", "data_bits", "parity", "stop_bits", "flow"], lease: .interface, parse: { $0.query }),
            context: context, line)
        router.device(
            "PUT", base + "/{interface}/modem", requires: Access.transfer,
            DeviceRoute(
                query: ["dtr", "rts"], lease: .interface,
                parse: { request in
                    let lines = (dtr: try request.query.boolean("dtr"), rts: try request.query.boolean("rts"))
                    guard lines.dtr != nil || lines.rts != nil else {
                        throw RoutingProblem.missingParameter(name: "dtr", expected: "dtr and/or rts: true or false")
                    }
                    return lines
                }),
            context: context, modem)
        router.device(
            "POST", base + "/{interface}/break", requires: Access.transfer,
            DeviceRoute(
                query: ["duration_ms"], lease: .interface,
                parse: { try $0.query.integer("duration_ms", in: 1...10_000) ?? 250 }),
            context: context, sendBreak)
        // A GET that types: the transfer scope (no page from another origin, no HEAD). Reading
        // only (write=false) is checked against no lease; typing against the interface's.
        router.device(
            "GET", base + "/{interface}/ws", requires: Access.webSocket(.transfer),
            DeviceRoute(
                query: ["from", "write"], lease: .byRoute(where: "ConsoleRoutes.socket: the interface's, when it types"),
                parse: { request in
                    (accept: try WebSocketUpgrade.accept(request.request, subprotocol: ConsoleSocket.subprotocol),
                     from: try Self.offset(request.query), write: try request.query.boolean("write") ?? true)
                }),
            context: context, socket)
    }

    /// Where output is read from: `start` (the oldest byte kept, the default), `end` (only
    /// what comes next), or an offset.
    enum Offset: Sendable {
        case start, end
        case at(UInt64)
    }

    private static func offset(_ query: QueryParameters) throws(RoutingProblem) -> Offset {
        switch query.string("from") {
        case nil, "start": return .start
        case "end": return .end
        case let text?:
            guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt64(text) else {
                throw .invalidParameter(name: "from", value: text, expected: "start, end or a byte offset")
            }
            return .at(value)
        }
    }

    /// The offset `offset` names in `ring`: past the end is the end; older than the ring keeps is
    /// its start, or as asked when `keepingOlder` (a WebSocket's first message then says what
    /// was lost; an HTTP reader has X-Console-From instead).
    private static func resolve(_ offset: Offset, _ ring: OutputRing, keepingOlder: Bool = false) -> UInt64 {
        switch offset {
        case .start: ring.start
        case .end: ring.end
        case .at(let value): min(keepingOlder ? value : max(value, ring.start), ring.end)
        }
    }

    func list(_ call: DeviceCall, _: Void) async throws -> HTTPResponse {
        try .json(ConsoleList(device: call.id, consoles: try context.consoleModels(device: call.id)))
    }

    func output(_ call: DeviceCall, _ input: (from: Offset, follow: Bool, maxBytes: Int?)) async throws -> HTTPResponse {
        let console = try context.console(call)
        let from = Self.resolve(input.from, console.ring)
        let trailers = call.request.request.headers["TE"]?.lowercased().contains("trailers") ?? false
        let stream = ConsoleOutputStream(
            console: console, from: from, follow: input.follow, maxBytes: input.maxBytes, sendsTrailers: trailers)
        var headers: HTTPHeaders = [
            "Content-Type": "application/octet-stream", "X-Console-TTY": console.info.tty, "X-Console-From": String(from),
        ]
        if trailers { headers.set("Trailer", "X-Console-Next, X-Console-Lost") }
        return .streaming(stream, headers: headers)
    }

    func input(_ call: DeviceCall, _ timeout: Int) async throws -> HTTPResponse {
        let console = try context.console(call)
        let bytes = call.request.request.body
        let owner = "request \(call.request.request.id)"
        guard console.takeWriter(owner) else { throw ConsoleProblem.writerBusy(device: call.id, tty: console.info.tty) }
        defer { console.releaseWriter(owner) }
        // true: all typed; false: the console went; a number: the timeout (or the client hung up),
        // and the bytes dropped.
        let wait = InputWait()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<(Bool, Int?), Never>) in
                console.execute { console in
                    guard wait.start(continuation) else { return wait.finish { (false, console.dropInput()) } }
                    console.type(bytes) { typed in wait.finish { (typed, nil) } }
                    console.loop.schedule(after: timeout) { wait.finish { (false, console.dropInput()) } }
                }
            }
        } onCancel: {
            // The client hung up: nobody reads the answer, the writer is let go at once.
            console.execute { console in wait.cancel { (false, console.dropInput()) } }
        }
        if let dropped = outcome.1 {
            throw ConsoleProblem.inputTimedOut(
                device: call.id, tty: console.info.tty, written: bytes.count - dropped, of: bytes.count)
        }
        guard outcome.0 else { throw ConsoleProblem.gone(device: call.id, tty: console.info.tty) }
        return try .json(InputAnswer(written: bytes.count))
    }

    struct InputAnswer: Encodable, Sendable {
        var written: Int
    }

    func line(_ call: DeviceCall, _ query: QueryParameters) async throws -> HTTPResponse {
        let console = try context.console(call)
        var line = try context.consoleCall(console, call) { () throws(Errno) in try console.line() }
        if let baud = try query.integer("baud", in: 50...12_000_000) { line.baud = baud }
        if let bits = try query.integer("data_bits", in: 5...8) { line.dataBits = bits }
        if let text = query.string("parity") {
            let parities: [String: Terminal.Line.Parity] = ["none": .none, "even": .even, "odd": .odd, "mark": .mark, "space": .space]
            guard let parity = parities[text] else {
                throw RoutingProblem.invalidParameter(name: "parity", value: text, expected: "none, even, odd, mark or space")
            }
            line.parity = parity
        }
        if let bits = try query.integer("stop_bits", in: 1...2) { line.stopBits = bits }
        if let flow = query.string("flow") {
            guard ["none", "rtscts", "xonxoff"].contains(flow) else {
                throw RoutingProblem.invalidParameter(name: "flow", value: flow, expected: "none, rtscts or xonxoff")
            }
            line.hardwareFlow = flow == "rtscts"
            line.softwareFlow = flow == "xonxoff"
        }
        do {
            try console.setLine(line)
        } catch {
            throw ConsoleProblem.lineRefused(device: call.id, tty: console.info.tty, reason: "\(error)")
        }
        call.request.request.logger.info(
            "console line set", metadata: ["usb.device": "\(call.id)", "usb.console": "\(console.info.tty)", "usb.console.baud": "\(line.baud)"])
        return try .json(ConsoleModel(console))
    }

    func modem(_ call: DeviceCall, _ lines: (dtr: Bool?, rts: Bool?)) async throws -> HTTPResponse {
        let console = try context.console(call)
        var set: Terminal.ModemLines = [], clear: Terminal.ModemLines = []
        if let dtr = lines.dtr { if dtr { set.insert(.dtr) } else { clear.insert(.dtr) } }
        if let rts = lines.rts { if rts { set.insert(.rts) } else { clear.insert(.rts) } }
        try context.consoleCall(console, call) { () throws(Errno) in try console.changeModemLines(set: set, clear: clear) }
        return try .json(ConsoleModel(console))
    }

    func sendBreak(_ call: DeviceCall, _ milliseconds: Int) async throws -> HTTPResponse {
        let console = try context.console(call)
        let failure = await withCheckedContinuation { continuation in
            console.sendBreak(milliseconds: milliseconds) { continuation.resume(returning: $0) }
        }
        if console.isGone { throw ConsoleProblem.gone(device: call.id, tty: console.info.tty) }
        if let failure { throw ConsoleProblem.lineRefused(device: call.id, tty: console.info.tty, reason: "a break: \(failure)") }
        return try .json(BreakAnswer(breakMs: milliseconds))
    }

    struct BreakAnswer: Encodable, Sendable {
        var breakMs: Int
    }

    func socket(_ call: DeviceCall, _ input: (accept: String, from: Offset, write: Bool)) async throws -> HTTPResponse {
        let console = try context.console(call)
        var writer: String?
        var slot: StreamSlots.Slot?
        if input.write {
            try context.checkLease(call.request, device: call.id, interface: call.pathNumber)
            let name = "websocket \(call.request.request.id)"
            guard console.takeWriter(name) else { throw ConsoleProblem.writerBusy(device: call.id, tty: console.info.tty) }
            writer = name
            // A lease granted later over the interface ends the typing, as it ends streams.
            slot = context.streamSlots.watch(device: call.id, interface: call.pathNumber, client: context.client(call.request))
        }
        let from = Self.resolve(input.from, console.ring, keepingOlder: true)
        call.request.request.logger.info(
            "console opened over a WebSocket",
            metadata: ["usb.device": "\(call.id)", "usb.console": "\(console.info.tty)", "usb.console.writes": "\(writer != nil)"])
        // Let go of the writer if the client leaves before the socket opens.
        let release = WriterRelease(console: console, writer: writer)
        let socketWriter = writer, socketSlot = slot
        return .webSocket(
            WebSocketUpgrade(accept: input.accept, subprotocol: ConsoleSocket.subprotocol, maxMessage: ConsoleSocket.maxMessage) {
                connection in
                release.handOver()
                let socket = ConsoleSocket(
                    console: console, connection: connection, from: from, writer: socketWriter, slot: socketSlot)
                socket.start()
                return socket
            })
    }
}

/// Gives a WebSocket's writer back if the socket never opened (the client left during the
/// handshake), when the upgrade's closure is let go.
private final class WriterRelease: @unchecked Sendable {
    let console: Console
    var writer: String?

    init(console: Console, writer: String?) {
        self.console = console
        self.writer = writer
    }

    func handOver() { writer = nil }

    deinit {
        if let writer { console.execute { $0.releaseWriter(writer) } }
    }
}

/// A POST's wait for the tty to take its input: the first of the typing's end, the timeout and
/// the client's hang-up answers it. Used on the console's loop only.
private final class InputWait: @unchecked Sendable {
    private var continuation: CheckedContinuation<(Bool, Int?), Never>?
    private var answered = false
    private var cancelled = false

    /// Keeps the continuation; false if the client hung up before (answer at once then).
    func start(_ continuation: CheckedContinuation<(Bool, Int?), Never>) -> Bool {
        self.continuation = continuation
        return !cancelled
    }

    /// Answers with `outcome`, made only by the first to finish (dropping the input ends the
    /// typing's wait too, which must not answer first).
    func finish(_ outcome: () -> (Bool, Int?)) {
        guard !answered, let continuation else { return }
        answered = true
        continuation.resume(returning: outcome())
    }

    /// The client hung up: answers now if the wait began.
    func cancel(_ outcome: () -> (Bool, Int?)) {
        cancelled = true
        finish(outcome)
    }
}

extension RouteContext {
    /// The open console of `call`'s interface, on the loop: 404 when the interface has none,
    /// 503 when the daemon found it and cannot open it.
    func console(_ call: DeviceCall) throws -> Console {
        let interface = call.pathNumber
        guard let book = consoles, book.loop.inEventLoop else { throw ConsoleProblem.notFound(device: call.id, interface: interface) }
        if let console = book.console(device: call.id, interface: interface), !console.isGone { return console }
        if let failed = book.consoles(device: call.id).failed.first(where: { $0.info.interface == interface }) {
            throw ConsoleProblem.unavailable(device: call.id, tty: failed.info.tty, reason: failed.reason)
        }
        throw ConsoleProblem.notFound(device: call.id, interface: interface)
    }

    /// Every console of `device`, open or not (none without consoles).
    func consoleModels(device: String) throws -> [ConsoleModel] {
        guard let book = consoles, book.loop.inEventLoop else { return [] }
        let (open, failed) = book.consoles(device: device)
        return (open.map { ConsoleModel($0) } + failed.map { ConsoleModel($0.info, reason: $0.reason) }).sorted { $0.interface < $1.interface }
    }

    /// A call on the console's tty: an error of its means the console went (EIO) or the
    /// driver refused.
    func consoleCall<T>(_ console: Console, _ call: DeviceCall, _ body: () throws(Errno) -> T) throws -> T {
        do {
            return try body()
        } catch {
            if console.isGone || error == .ioError { throw ConsoleProblem.gone(device: call.id, tty: console.info.tty) }
            throw ConsoleProblem.lineRefused(device: call.id, tty: console.info.tty, reason: "\(error)")
        }
    }
}
