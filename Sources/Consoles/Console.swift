import EventLoop
import LinuxSystem
import Logging
import SystemPackage

/// One console: a USB serial interface's tty, held open by the daemon from when it is found
/// until it goes, so that what the board prints is kept (``OutputRing``) for any reader,
/// however late it comes. Many readers follow the output; one writer at a time types.
///
/// Lives on the event loop (the tty is one of its watches), checked at every entry point, no
/// lock. From elsewhere: ``execute(_:)`` hops there.
public final class Console: @unchecked Sendable {
    public let info: ConsoleInfo
    public let loop: EventLoop
    private let terminal: Terminal
    private let logger: Logger
    private var watch: EventLoop.Watch?
    private var watching: Epoll.Events = [.input]
    public private(set) var ring: OutputRing
    private var readers: [UInt64: @Sendable () -> Void] = [:]
    private var nextReader: UInt64 = 1
    /// Who types now (a WebSocket's or a POST's owner name), nil for nobody.
    public private(set) var writer: String?
    /// Bytes written by the writer that the tty has not taken yet, and who waits for them.
    private var pending: [UInt8] = []
    /// What each read of the tty goes into (kept: a read comes with every piece of output).
    private var readBuffer = [UInt8](repeating: 0, count: 16 << 10)
    private var pendingStart = 0
    private var written: [(upTo: UInt64, done: @Sendable (Bool) -> Void)] = []
    /// Bytes handed to the tty so far (offsets for ``written``).
    private var typed: UInt64 = 0
    private var queued: UInt64 = 0
    public private(set) var isGone = false
    private var goneHandlers: [@Sendable () -> Void] = []

    /// Opens `info`'s tty in `directory` (/dev, or the host's /dev mounted elsewhere in a
    /// container), on `loop`.
    public init(info: ConsoleInfo, loop: EventLoop, ringCapacity: Int, directory: String = "/dev", logger: Logger) throws(Errno) {
        self.info = info
        self.loop = loop
        self.logger = logger
        self.ring = OutputRing(capacity: ringCapacity)
        self.terminal = try Terminal.open(directory + "/" + info.tty)
    }

    /// Starts reading (on the loop).
    public func start() throws(Errno) {
        loop.preconditionInEventLoop()
        watch = try loop.watch(terminal.descriptor, for: watching) { [weak self] events in self?.ready(events) }
    }

    /// Runs `body` with this console on its loop.
    public func execute(_ body: @escaping @Sendable (Console) -> Void) {
        if loop.inEventLoop { body(self) } else { loop.execute { [self] in body(self) } }
    }

    // MARK: Output

    /// Calls `wake` (on the loop) whenever output came or the console went; ``unfollow(_:)`` ends it.
    public func follow(_ wake: @escaping @Sendable () -> Void) -> UInt64 {
        loop.preconditionInEventLoop()
        let id = nextReader
        nextReader += 1
        readers[id] = wake
        return id
    }

    public func unfollow(_ id: UInt64) {
        loop.preconditionInEventLoop()
        readers[id] = nil
    }

    public var readerCount: Int { readers.count }

    // MARK: Input

    /// Makes `owner` the writer, if nobody else is.
    public func takeWriter(_ owner: String) -> Bool {
        loop.preconditionInEventLoop()
        guard !isGone, writer == nil || writer == owner else { return false }
        writer = owner
        return true
    }

    public func releaseWriter(_ owner: String) {
        loop.preconditionInEventLoop()
        if writer == owner { writer = nil }
    }

    /// Bytes the tty has not taken yet.
    public var backlog: Int { pending.count - pendingStart }

    /// Types `bytes` (the writer's): `done(true)` once the tty took them all, `done(false)` if
    /// the console went first.
    public func type(_ bytes: [UInt8], done: @escaping @Sendable (Bool) -> Void) {
        loop.preconditionInEventLoop()
        guard !isGone else { return done(false) }
        pending.append(contentsOf: bytes)
        queued += UInt64(bytes.count)
        written.append((queued, done))
        flush()
    }

    /// Drops what the writer typed that the tty has not taken (its request timed out): their
    /// waiters hear `false`. How many bytes were dropped.
    @discardableResult
    public func dropInput() -> Int {
        loop.preconditionInEventLoop()
        let dropped = backlog
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        queued = typed
        let waiting = written
        written = []
        for (_, done) in waiting { done(false) }
        return dropped
    }

    // MARK: Line

    public func line() throws(Errno) -> Terminal.Line {
        loop.preconditionInEventLoop()
        return try terminal.line()
    }

    public func setLine(_ line: Terminal.Line) throws(Errno) {
        loop.preconditionInEventLoop()
        try terminal.setLine(line)
    }

    public func modemLines() throws(Errno) -> Terminal.ModemLines {
        loop.preconditionInEventLoop()
        return try terminal.modemLines()
    }

    public func changeModemLines(set: Terminal.ModemLines, clear: Terminal.ModemLines) throws(Errno) {
        loop.preconditionInEventLoop()
        try terminal.changeModemLines(set: set, clear: clear)
    }

    /// A break of `milliseconds`: `done` when it has ended (or failed).
    public func sendBreak(milliseconds: Int, done: @escaping @Sendable (Errno?) -> Void) {
        loop.preconditionInEventLoop()
        do {
            try terminal.setBreak(true)
        } catch {
            return done(error)
        }
        loop.schedule(after: milliseconds) { [self] in
            do throws(Errno) {
                if !isGone { try terminal.setBreak(false) }
                done(nil)
            } catch {
                done(error)
            }
        }
    }

    // MARK: Gone

    /// Calls `handler` once the console is gone (at once if it is).
    public func whenGone(_ handler: @escaping @Sendable () -> Void) {
        loop.preconditionInEventLoop()
        if isGone { handler() } else { goneHandlers.append(handler) }
    }

    /// Closes the tty (its device left, or the daemon stops): readers are woken to end,
    /// writers told.
    public func close(reason: String) {
        loop.preconditionInEventLoop()
        guard !isGone else { return }
        isGone = true
        if let watch { loop.unwatch(watch) }
        do {
            try terminal.close()
        } catch {
            logger.warning("closing a console failed", metadata: ["usb.console": "\(info.tty)", "error": "\(error)"])
        }
        logger.info("console closed", metadata: ["usb.console": "\(info.tty)", "reason": "\(reason)"])
        for (_, done) in written { done(false) }
        written = []
        pending = []
        pendingStart = 0
        writer = nil
        for wake in readers.values { wake() }
        let handlers = goneHandlers
        goneHandlers = []
        for handler in handlers { handler() }
    }

    // MARK: The tty

    private func ready(_ events: Epoll.Events) {
        if events.contains(.input) || events.contains(.hangup) || events.contains(.error) { drain() }
        if !isGone, events.contains(.output) { flush() }
    }

    /// Reads what the tty has into the ring, then wakes the readers once. At most a quarter of
    /// the ring (64 KiB at most) a turn: a board printing as fast as the tty goes would
    /// otherwise be read for as long as it prints, and the ring pass over readers that never
    /// had a turn of the loop to take their part (the watch is level-triggered: the rest is
    /// read at the loop's next turn).
    private func drain() {
        var got = false
        var budget = max(4096, min(ring.capacity / 4, 64 << 10))
        reading: while !isGone, budget > 0 {
            let read: Terminal.Read
            do {
                read = try readBuffer.withUnsafeMutableBytes {
                    try terminal.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<min($0.count, budget)]))
                }
            } catch {
                close(reason: "read failed: \(error)")
                return
            }
            switch read {
            case .bytes(let count):
                readBuffer.withUnsafeBytes { ring.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                got = true
                budget -= count
            case .empty:
                break reading
            case .gone:
                close(reason: "its tty went away")  // wakes every reader: what came is still theirs to read
                return
            }
        }
        if got { for wake in readers.values { wake() } }
    }

    /// Writes what is pending; watches for room while the tty takes no more.
    private func flush() {
        while pendingStart < pending.count {
            let taken: Int
            do {
                taken = try pending.withUnsafeBytes { try terminal.write(UnsafeRawBufferPointer(rebasing: $0[pendingStart...])) }
            } catch {
                close(reason: "write failed: \(error)")
                return
            }
            if taken == 0 { break }
            pendingStart += taken
            typed += UInt64(taken)
        }
        while let first = written.first, first.upTo <= typed {
            written.removeFirst()
            first.done(true)
        }
        if pendingStart == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
        let wanted: Epoll.Events = pending.isEmpty ? [.input] : [.input, .output]
        if wanted != watching, let watch {
            do {
                try loop.change(watch, to: wanted)
                watching = wanted
            } catch {
                close(reason: "cannot watch its tty: \(error)")
            }
        }
    }
}
