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
final class ConnectionWatch: @unchecked Sendable {
    let socket: FileDescriptor
    private let loop: EventLoop
    private var watch: EventLoop.Watch?
    private var wantsRoom = false
    /// The peer hung up (or the socket failed).
    private(set) var hungUp = false
    private var onHangup: (() -> Void)?
    private var onRoom: (() -> Void)?

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
    }

    /// Calls `handler` once when the socket has room again (after a send that took nothing all).
    func waitForRoom(_ handler: @escaping () -> Void) {
        onRoom = handler
        setRoom(true)
    }

    /// The connection closed: the socket is watched no more.
    func closed() {
        onHangup = nil
        onRoom = nil
        if let watch {
            loop.unwatch(watch)
            self.watch = nil
        }
    }

    private func setRoom(_ wanted: Bool) {
        guard let watch, wantsRoom != wanted else { return }
        wantsRoom = wanted
        do {
            try loop.change(watch, to: wanted ? [.readHangup, .output, .edgeTriggered] : [.readHangup, .edgeTriggered])
        } catch {
            // Cannot watch for room: count it as a failed socket.
            hangUp()
        }
    }

    private func ready(_ events: Epoll.Events) {
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
        let handler = onHangup
        onHangup = nil
        onRoom = nil
        handler?()
    }
}
