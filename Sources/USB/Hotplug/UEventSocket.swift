import CLinux
import Glibc

/// A socket on the kernel's uevent multicast group (NETLINK_KOBJECT_UEVENT, group 1): the
/// messages udevd itself listens to, delivered with or without udevd. Non-blocking.
final class UEventSocket: Sendable {
    let fd: Int32

    /// nil when netlink is not allowed here (some sandboxes) and errno says why.
    init?() {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                        NETLINK_KOBJECT_UEVENT)
        guard fd >= 0 else { return nil }
        // A burst of plugging must not overflow the queue: ask for 4 MiB (root may exceed rmem_max).
        var size: Int32 = 4 << 20
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = 1
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard bound == 0 else {
            let saved = errno
            close(fd)
            errno = saved
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    enum Received {
        case event(UEvent?)
        /// The kernel dropped messages (ENOBUFS): whatever was missed must be found by a rescan.
        case overflow
        case empty
    }

    /// The next queued message, without waiting. Only messages from the kernel (sender port 0)
    /// are taken.
    func receive(into buffer: inout [UInt8]) -> Received {
        while true {
            var sender = sockaddr_nl()
            var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &sender) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, bytes.baseAddress, bytes.count, 0, $0, &length)
                    }
                }
            }
            if count < 0 {
                switch errno {
                case EINTR: continue
                case ENOBUFS: return .overflow
                default: return .empty
                }
            }
            guard sender.nl_pid == 0 else { continue }
            return .event(UEvent(buffer.prefix(count)))
        }
    }
}
