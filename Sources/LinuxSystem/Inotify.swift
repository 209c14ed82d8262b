import CLinux
import Glibc
import SystemPackage

/// An inotify instance: folders watched for entries created and deleted. Non-blocking.
public struct Inotify: Sendable {
    public let descriptor: FileDescriptor

    /// inotify_init1(IN_CLOEXEC | IN_NONBLOCK).
    public static func create() throws(Errno) -> Inotify {
        Inotify(descriptor: FileDescriptor(rawValue: try valueOrErrno { inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK)) }))
    }

    private init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// inotify_add_watch(2) for entries created in or deleted from the folder at `path`
    /// (IN_CREATE | IN_DELETE | IN_ONLYDIR); watching a folder twice is harmless.
    public func watchEntries(of path: String) throws(Errno) {
        try nothingOrErrno { inotify_add_watch(descriptor.rawValue, path, UInt32(IN_CREATE | IN_DELETE | IN_ONLYDIR)) }
    }

    /// read(2)s every queued event into `buffer` (their content is not needed: a change
    /// means a rescan); whether there was any.
    public func drain(using buffer: inout [UInt8]) throws(Errno) -> Bool {
        var any = false
        while true {
            let count: Int
            do throws(Errno) {
                count = try valueOrErrno { buffer.withUnsafeMutableBytes { read(descriptor.rawValue, $0.baseAddress, $0.count) } }
            } catch where error == .resourceTemporarilyUnavailable {
                return any
            }
            guard count > 0 else { return any }
            any = true
        }
    }

    /// close(2).
    public func close() throws(Errno) { try descriptor.closeDescriptor() }
}
