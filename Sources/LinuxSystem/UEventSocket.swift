import CLinux
import Glibc
import SystemPackage

/// A socket on the kernel's uevent multicast group (NETLINK_KOBJECT_UEVENT, group 1): the
/// messages udevd itself listens to, delivered with or without udevd. Non-blocking.
public struct UEventSocket: Sendable {
    public let descriptor: FileDescriptor

    /// socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT) bound to group 1, with a 4 MiB
    /// receive buffer asked for (SO_RCVBUFFORCE, else SO_RCVBUF up to rmem_max) so that a
    /// burst of plugging does not overflow it. Throws when netlink is not allowed here (some
    /// sandboxes).
    public static func open() throws(Errno) -> UEventSocket {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = FileDescriptor(rawValue: try valueOrErrno { socket(AF_NETLINK, type, NETLINK_KOBJECT_UEVENT) })
        do {
            var size: Int32 = 4 << 20
            let length = socklen_t(MemoryLayout<Int32>.size)
            do {
                try nothingOrErrno { setsockopt(fd.rawValue, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) }
            } catch where error == .notPermitted {
                // Without CAP_NET_ADMIN: as much as rmem_max allows.
                try nothingOrErrno { setsockopt(fd.rawValue, SOL_SOCKET, SO_RCVBUF, &size, length) }
            }
            var address = sockaddr_nl()
            address.nl_family = sa_family_t(AF_NETLINK)
            address.nl_groups = 1
            try nothingOrErrno {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
        } catch {
            try? fd.closeDescriptor()
            throw error
        }
        return UEventSocket(descriptor: fd)
    }

    private init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    public enum Received: Sendable, Equatable {
        /// A message of `count` bytes from the kernel (sender port 0) is in the buffer.
        case message(count: Int)
        /// The kernel dropped messages (ENOBUFS): whatever was missed must be found by a rescan.
        case overflow
        /// Nothing is queued (EAGAIN).
        case empty
    }

    /// recvfrom(2) of the next queued message, without waiting; messages from other senders
    /// than the kernel are skipped.
    public func receive(into buffer: inout [UInt8]) throws(Errno) -> Received {
        while true {
            var sender = sockaddr_nl()
            var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
            let count: Int
            do throws(Errno) {
                count = try valueOrErrno {
                    buffer.withUnsafeMutableBytes { bytes in
                        withUnsafeMutablePointer(to: &sender) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                                recvfrom(descriptor.rawValue, bytes.baseAddress, bytes.count, 0, $0, &length)
                            }
                        }
                    }
                }
            } catch where error == .noBufferSpace {
                return .overflow
            } catch where error == .resourceTemporarilyUnavailable {
                return .empty
            }
            guard sender.nl_pid == 0 else { continue }
            return .message(count: count)
        }
    }

    /// close(2).
    public func close() throws(Errno) { try descriptor.closeDescriptor() }
}
