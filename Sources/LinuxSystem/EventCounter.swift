import CLinux
import Glibc
import SystemPackage

/// An eventfd: a counter in the kernel that is readable while above zero, to wake a thread
/// waiting in epoll. Non-blocking.
public struct EventCounter: Sendable {
    public let descriptor: FileDescriptor

    /// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
    public static func create() throws(Errno) -> EventCounter {
        EventCounter(descriptor: FileDescriptor(rawValue: try valueOrErrno { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }))
    }

    private init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// eventfd_write(1): makes the counter readable.
    public func signal() throws(Errno) {
        try nothingOrErrno { eventfd_write(descriptor.rawValue, 1) }
    }

    /// eventfd_read: resets the counter; what it held (0 if it was at zero already).
    @discardableResult
    public func drain() throws(Errno) -> UInt64 {
        var value: eventfd_t = 0
        do {
            try nothingOrErrno { eventfd_read(descriptor.rawValue, &value) }
        } catch where error == .resourceTemporarilyUnavailable {
            return 0
        }
        return value
    }

    /// close(2).
    public func close() throws(Errno) { try descriptor.closeDescriptor() }
}
