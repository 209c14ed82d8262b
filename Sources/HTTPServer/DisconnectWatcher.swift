import CLinux
import CMicroHTTPD
import Glibc
import Synchronization
import Threads

/// Notices clients that go away while their connection is suspended (libmicrohttpd does not
/// look at a suspended connection's socket). Watches each such socket in an epoll set of its
/// own for EPOLLRDHUP/EPOLLHUP/EPOLLERR, one-shot, and calls the registered handler on its
/// thread. A client that half-closes its side after sending a request counts as gone.
final class DisconnectWatcher: Sendable {
    /// One watched socket; `cancel()` stops watching it (before the connection is resumed).
    struct Registration: Sendable {
        fileprivate let token: UInt64
        fileprivate let fd: Int32
        fileprivate let watcher: DisconnectWatcher

        func cancel() { watcher.unwatch(self) }
    }

    private let epollFD: Int32
    /// An eventfd in the epoll set: writing to it ends the thread.
    private let wakeFD: Int32
    private let handlers = Mutex<[UInt64: @Sendable () -> Void]>([:])
    private let nextToken = Atomic<UInt64>(1)
    private static let wakeToken: UInt64 = 0

    init?() {
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { return nil }
        let wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            close(epollFD)
            return nil
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeToken
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event)
        NamedThread.start(name: "http-hangups") { [self] in loop() }
    }

    /// Calls `handler` once if the client of `connection` hangs up, until the registration is
    /// cancelled; nil if its socket cannot be watched.
    func watch(_ connection: ConnectionRef, handler: @escaping @Sendable () -> Void) -> Registration? {
        let fd = usbhttpd_mhd_connection_fd(connection.pointer)
        guard fd >= 0 else { return nil }
        let token = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = handler }
        var event = epoll_event()
        event.events = EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = token
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
            handlers.withLock { _ = $0.removeValue(forKey: token) }
            return nil
        }
        return Registration(token: token, fd: fd, watcher: self)
    }

    /// Ends the thread. Registrations still open are dropped without calling their handlers.
    func stop() {
        _ = eventfd_write(wakeFD, 1)
    }

    private func unwatch(_ registration: Registration) {
        handlers.withLock { _ = $0.removeValue(forKey: registration.token) }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, registration.fd, nil)
    }

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 32)
        while true {
            let count = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if count < 0 {
                if errno == EINTR { continue }
                break
            }
            for event in events.prefix(Int(count)) {
                let token = event.data.u64
                if token == Self.wakeToken {
                    handlers.withLock { $0.removeAll() }
                    close(wakeFD)
                    close(epollFD)
                    return
                }
                handlers.withLock { $0.removeValue(forKey: token) }?()
            }
        }
    }
}
