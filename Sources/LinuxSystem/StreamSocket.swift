import CLinux
import Glibc
import SystemPackage

/// Writing to a connected stream socket that someone else made (a client's connection).
public enum StreamSocket {
    /// sendmsg(2) of `pieces`, in order, without blocking and without SIGPIPE
    /// (MSG_DONTWAIT | MSG_NOSIGNAL): the bytes the kernel took (perhaps only some), or nil when
    /// it takes none now (EAGAIN). A peer gone throws `.brokenPipe` or `.connectionReset`.
    public static func send(_ fd: FileDescriptor, _ pieces: UnsafeMutableBufferPointer<iovec>) throws(Errno) -> Int? {
        var message = msghdr()
        message.msg_iov = pieces.baseAddress
        message.msg_iovlen = pieces.count
        do {
            return try valueOrErrno { sendmsg(fd.rawValue, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        } catch where error == .resourceTemporarilyUnavailable || error == .wouldBlock {
            return nil
        }
    }

    /// recv(2) into `buffer` without blocking (MSG_DONTWAIT): the bytes read, 0 once the peer
    /// closed its side, nil when none wait now (EAGAIN).
    public static func receive(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        do {
            return try valueOrErrno { recv(fd.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
        } catch where error == .resourceTemporarilyUnavailable || error == .wouldBlock {
            return nil
        }
    }

    /// setsockopt(TCP_NODELAY): whether small writes go out at once (on) or wait to be
    /// joined with what follows (off, Nagle's algorithm).
    public static func setNoDelay(_ fd: FileDescriptor, _ on: Bool) throws(Errno) {
        var value: Int32 = on ? 1 : 0
        try nothingOrErrno {
            setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// IOV_MAX: the most pieces one ``send(_:_:)`` takes.
    public static let maxPieces = 1024

    /// ioctl(SIOCOUTQ): the bytes sent that the peer has not acknowledged yet (0: everything
    /// written has reached the peer's kernel, and the send buffer is empty).
    public static func unacknowledgedBytes(_ fd: FileDescriptor) throws(Errno) -> Int {
        var count: Int32 = 0
        try nothingOrErrno { ioctl(fd.rawValue, UInt(TIOCOUTQ), &count) }
        return Int(count)
    }
}

/// The monotonic clock at the kernel's tick resolution (CLOCK_MONOTONIC_COARSE: a few
/// milliseconds, read without touching the hardware clock, which is slow under emulation).
public enum CoarseClock {
    /// Milliseconds since an unspecified start.
    public static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
