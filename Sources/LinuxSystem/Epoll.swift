import CLinux
import Glibc
import SystemPackage

/// An epoll instance: epoll_create1, epoll_ctl and epoll_wait, typed. Each registration
/// carries a 64-bit `token` that its events bring back.
public struct Epoll: Sendable {
    public let descriptor: FileDescriptor

    /// What to wait for, and what came (the `events` of `struct epoll_event`).
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// EPOLLIN: readable.
        public static let input = Events(rawValue: EPOLLIN.rawValue)
        /// EPOLLOUT: writable.
        public static let output = Events(rawValue: EPOLLOUT.rawValue)
        /// EPOLLRDHUP: the peer closed its side of a stream socket.
        public static let readHangup = Events(rawValue: EPOLLRDHUP.rawValue)
        /// EPOLLHUP: hung up (always reported, never needs asking).
        public static let hangup = Events(rawValue: EPOLLHUP.rawValue)
        /// EPOLLERR: an error is pending (always reported, never needs asking).
        public static let error = Events(rawValue: EPOLLERR.rawValue)
        /// EPOLLONESHOT: report once, then stay quiet until modified.
        public static let oneShot = Events(rawValue: EPOLLONESHOT.rawValue)
        /// EPOLLET: report changes only.
        public static let edgeTriggered = Events(rawValue: EPOLLET.rawValue)

        /// The peer hung up or the descriptor failed: any of readHangup, hangup, error.
        public var isHangup: Bool { !intersection([.readHangup, .hangup, .error]).isEmpty }
    }

    /// epoll_create1(EPOLL_CLOEXEC).
    public static func create() throws(Errno) -> Epoll {
        Epoll(descriptor: FileDescriptor(rawValue: try valueOrErrno { epoll_create1(Int32(EPOLL_CLOEXEC)) }))
    }

    private init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// epoll_ctl(EPOLL_CTL_ADD).
    public func add(_ fd: FileDescriptor, events: Events, token: UInt64) throws(Errno) {
        try control(EPOLL_CTL_ADD, fd, events: events, token: token)
    }

    /// epoll_ctl(EPOLL_CTL_MOD): new events (and re-arms a one-shot registration).
    public func modify(_ fd: FileDescriptor, events: Events, token: UInt64) throws(Errno) {
        try control(EPOLL_CTL_MOD, fd, events: events, token: token)
    }

    /// epoll_ctl(EPOLL_CTL_DEL).
    public func remove(_ fd: FileDescriptor) throws(Errno) {
        try nothingOrErrno { epoll_ctl(descriptor.rawValue, EPOLL_CTL_DEL, fd.rawValue, nil) }
    }

    private func control(_ operation: Int32, _ fd: FileDescriptor, events: Events, token: UInt64) throws(Errno) {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.u64 = token
        try nothingOrErrno { epoll_ctl(descriptor.rawValue, operation, fd.rawValue, &event) }
    }

    /// epoll_wait into `buffer`, for up to `timeout` milliseconds (-1: no limit); how many
    /// events came. An interrupted wait (EINTR) returns 0 events.
    public func wait(into buffer: inout EventBuffer, timeout: Int32) throws(Errno) -> Int {
        let capacity = Int32(buffer.storage.count)
        do {
            let count = try buffer.storage.withUnsafeMutableBufferPointer { (events) throws(Errno) -> Int32 in
                try valueOrErrno(retryOnInterrupt: false) { epoll_wait(descriptor.rawValue, events.baseAddress, capacity, timeout) }
            }
            buffer.count = Int(count)
            return Int(count)
        } catch where error == .interrupted {
            buffer.count = 0
            return 0
        }
    }

    /// close(2) of the instance.
    public func close() throws(Errno) { try descriptor.closeDescriptor() }

    /// Room for the events of one ``wait(into:timeout:)``, and what it brought.
    public struct EventBuffer {
        fileprivate var storage: [epoll_event]
        /// How many events the last wait brought.
        public fileprivate(set) var count = 0

        public init(capacity: Int) { storage = Array(repeating: epoll_event(), count: max(capacity, 1)) }

        /// Event `index` (below ``count``): what came, and the registration's token.
        public subscript(index: Int) -> (events: Events, token: UInt64) {
            let event = storage[index]
            return (Events(rawValue: event.events), event.data.u64)
        }
    }
}
