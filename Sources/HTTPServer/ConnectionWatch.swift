import CMicroHTTPD
import EventLoop
import LinuxSystem
import Logging
import SystemPackage

/// The one watch on a connection's socket, for the connection's whole life (from
/// libmicrohttpd's notify-connection callback, started to closed): whoever waits while
/// libmicrohttpd does not look at the socket hears of a hang-up (a request suspended while its
/// handler works, a stream suspended while it has no data) or of room to write (a stream that
/// writes the socket itself). One registration per connection, edge-triggered, instead of one
/// per request; all on the event loop.
///
/// A hang-up that comes while nobody waits is remembered: whoever waits next hears of it at once.
///
/// While a client is held back (its body waits for the handler, libmicrohttpd reads nothing),
/// TCP hides a client that left: its unsent bytes wait in its own kernel behind a closed
/// window, and its FIN behind them. ``probeWhileWaiting(take:)`` brings that out: an interim
/// `100 Continue` goes to the socket after a second held back, then after 2, 4 and 8 more,
/// and a socket whose program is gone answers data with a reset (RFC 1122 §4.2.2.13), which
/// the watch hears. Clients accept 1xx answers before the final one (RFC 9110 §15.2), but
/// only so many (Go's client 5 in all, CPython's 100): the caller gives each request a small
/// budget of probes, and probes only plain HTTP/1.1 connections.
final class ConnectionWatch: @unchecked Sendable {
    let socket: FileDescriptor
    /// The client the connection counts for (``ClientConnections``), set when it starts.
    var client: String?
    private let loop: EventLoop
    private var watch: EventLoop.Watch?
    private var wantsRoom = false
    /// Input is wanted (a connection taken over for another protocol reads it itself).
    private var onInput: (() -> Void)?
    /// The peer hung up (or the socket failed).
    private(set) var hungUp = false
    private var onHangup: (() -> Void)?
    private var onRoom: (() -> Void)?
    /// The deadline source of the probes, while probing; when the next is due, the wait before
    /// the one after it, and what says whether the request may have one more.
    private var probe: UInt64?
    private var nextProbe: Int64 = 0
    private var probeInterval: Int64 = 0
    private var takeProbe: (() -> Bool)?
    static let firstProbeAfter: Int64 = 1000
    private static let probeBytes = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private init(socket: FileDescriptor, loop: EventLoop) {
        self.socket = socket
        self.loop = loop
    }

    /// Starts watching the socket of a new connection; nil if it cannot be watched (then hang-ups
    /// are noticed only when libmicrohttpd reads).
    static func start(socket: FileDescriptor, loop: EventLoop, logger: Logger) -> ConnectionWatch? {
        let connection = ConnectionWatch(socket: socket, loop: loop)
        do {
            connection.watch = try loop.watch(socket, for: [.readHangup, .edgeTriggered]) {
                [unowned(unsafe) connection] events in connection.ready(events)
            }
        } catch {
            logger.warning("cannot watch a connection's socket", metadata: ["error": "\(error)"])
            return nil
        }
        return connection
    }

    /// The connection's watch, from its socket context.
    static func of(_ connection: OpaquePointer) -> ConnectionWatch? {
        usbhttpd_mhd_socket_context(connection).map { Unmanaged<ConnectionWatch>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Calls `handler` once if the peer hangs up before ``stopWaiting()``: at once (and returns
    /// false) if it has already.
    @discardableResult
    func waitForHangup(_ handler: @escaping () -> Void) -> Bool {
        guard !hungUp else {
            handler()
            return false
        }
        onHangup = handler
        return true
    }

    /// Nobody waits any more (libmicrohttpd looks at the socket again).
    func stopWaiting() {
        onHangup = nil
        onRoom = nil
        setRoom(false)
        stopProbing()
    }

    /// Until ``stopWaiting()``, writes an interim `100 Continue` after 1, 3, 7 and 15 seconds
    /// to find out whether a held-back client is still there (see the type's comment), each
    /// only if `take` says the request may have one more.
    func probeWhileWaiting(take: @escaping () -> Bool) {
        guard probe == nil, !hungUp else { return }
        takeProbe = take
        probeInterval = Self.firstProbeAfter
        nextProbe = CoarseClock.milliseconds() + probeInterval
        probe = loop.addDeadlineSource(
            next: { [unowned(unsafe) self] in Int(max(self.nextProbe - CoarseClock.milliseconds(), 0)) },
            expired: { [unowned(unsafe) self] in self.sendProbe() })
    }

    private func stopProbing() {
        takeProbe = nil
        guard let probe else { return }
        loop.removeDeadlineSource(probe)
        self.probe = nil
    }

    /// One probe, written whole or not at all: only onto an empty send queue (so that the
    /// kernel takes all of it, and nothing half-written is left before libmicrohttpd's answer).
    private func sendProbe() {
        guard probe != nil else { return }
        probeInterval *= 2
        nextProbe = CoarseClock.milliseconds() + probeInterval
        do {
            guard try StreamSocket.unacknowledgedBytes(socket) == 0 else { return }  // a client that reads nothing yet
            guard takeProbe?() == true else {
                stopProbing()
                return
            }
            var bytes = Self.probeBytes
            let sent = try bytes.withUnsafeMutableBytes { (raw) throws(Errno) -> Int? in
                var piece = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
                return try withUnsafeMutablePointer(to: &piece) { (pointer) throws(Errno) -> Int? in
                    try StreamSocket.send(socket, UnsafeMutableBufferPointer(start: pointer, count: 1))
                }
            }
            if sent != nil && sent != bytes.count { hangUp() }  // cannot happen on an empty queue; never leave half a line
        } catch {
            hangUp()
        }
    }

    /// Calls `handler` once when the socket has room again (after a send that took nothing all).
    func waitForRoom(_ handler: @escaping () -> Void) {
        onRoom = handler
        setRoom(true)
    }

    /// Calls `handler` whenever bytes arrive (edge-triggered: the handler reads until the
    /// socket has none), until ``stopReading()``: for a connection taken over by another
    /// protocol (a WebSocket), which reads the socket itself. A hang-up still goes to the
    /// ``waitForHangup(_:)`` handler, after `handler` had the last bytes.
    func readWhileOpen(_ handler: @escaping () -> Void) {
        onInput = handler
        updateInterest()
    }

    /// No more input is wanted.
    func stopReading() {
        onInput = nil
        updateInterest()
    }

    /// The connection closed: the socket is watched no more.
    func closed() {
        onHangup = nil
        onRoom = nil
        onInput = nil
        stopProbing()
        if let watch {
            loop.unwatch(watch)
            self.watch = nil
        }
    }

    private func setRoom(_ wanted: Bool) {
        guard wantsRoom != wanted else { return }
        wantsRoom = wanted
        updateInterest()
    }

    /// What the watch asks epoll for: hang-ups always, room and input when wanted.
    private var interest: Epoll.Events {
        var events: Epoll.Events = [.readHangup, .edgeTriggered]
        if wantsRoom { events.insert(.output) }
        if onInput != nil { events.insert(.input) }
        return events
    }

    private var watching: Epoll.Events = [.readHangup, .edgeTriggered]

    private func updateInterest() {
        guard let watch, !hungUp, interest != watching else { return }
        do {
            try loop.change(watch, to: interest)
            watching = interest
        } catch {
            // Cannot watch for room or input: count it as a failed socket.
            hangUp()
        }
    }

    private func ready(_ events: Epoll.Events) {
        // The last bytes first, then the hang-up.
        if events.contains(.input), let input = onInput { input() }
        if events.isHangup {
            hangUp()
            return
        }
        if events.contains(.output), let room = onRoom {
            onRoom = nil
            setRoom(false)
            room()
        }
    }

    private func hangUp() {
        guard !hungUp else { return }
        hungUp = true
        stopProbing()
        let handler = onHangup
        onHangup = nil
        onRoom = nil
        handler?()
    }
}
