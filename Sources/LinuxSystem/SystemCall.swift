import Glibc
import SystemPackage

// The one path from every wrapper in this module to its C call: a result of -1 becomes the
// thrown `Errno`, read right after the call; EINTR is retried where the call allows it.

/// Runs `call` and returns its result, or throws `errno` when it returns -1. An interrupted
/// call (EINTR) is made again when `retryOnInterrupt`.
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) throws(Errno) -> I {
    while true {
        let result = call()
        guard result == -1 else { return result }
        let error = Errno(rawValue: errno)
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}

/// ``valueOrErrno(retryOnInterrupt:_:)`` for calls whose only result is success.
@inline(__always)
func nothingOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) throws(Errno) {
    _ = try valueOrErrno(retryOnInterrupt: retryOnInterrupt, call)
}

extension FileDescriptor {
    /// close(2), for descriptors this module made. EINTR is not retried (Linux has closed the
    /// descriptor by then).
    public func closeDescriptor() throws(Errno) {
        try nothingOrErrno(retryOnInterrupt: false) { Glibc.close(rawValue) }
    }
}
