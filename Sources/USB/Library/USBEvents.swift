import CLibUSB
import EventLoop
import Glibc
import LinuxSystem
import Logging
import Synchronization
import SystemPackage

/// libusb's events for a context, handled on an ``EventLoop``: every transfer's completion
/// callback, timeout and device removal runs on the loop's thread, where the requests and
/// streams that wait for them run too.
///
/// libusb's descriptors (its internal eventfd, its timerfd, one usbfs descriptor per open
/// device) are kept in an epoll set of their own (libusb_get_pollfds, then
/// libusb_set_pollfd_notifiers as devices open and close), which the loop watches as one
/// descriptor. When it is readable, libusb_handle_events_timeout_completed runs with a zero
/// timeout: libusb polls its descriptors and calls back what completed, without waiting.
/// (On Linux libusb's timeouts live in its timerfd, so no deadline is needed beside it.)
public final class USBEvents: Sendable {
    private let context: USBContext
    private let loop: EventLoop
    private let set: Epoll
    private let watch = Mutex<EventLoop.Watch?>(nil)
    private let logger: Logger

    /// Starts handling `context`'s events on `loop`.
    public init(context: USBContext, loop: EventLoop, logger: Logger) throws(Errno) {
        self.context = context
        self.loop = loop
        self.logger = logger
        self.set = try Epoll.create()
        let box = Unmanaged.passUnretained(self).toOpaque()
        libusb_set_pollfd_notifiers(context.pointer, pollfdAdded, pollfdRemoved, box)
        if let list = libusb_get_pollfds(context.pointer) {
            var index = 0
            while let entry = list[index] {
                add(entry.pointee.fd, pollEvents: entry.pointee.events)
                index += 1
            }
            libusb_free_pollfds(list)
        }
        let context = context
        let watched = try loop.watch(set.descriptor, for: .input) { _ in
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            _ = libusb_handle_events_timeout_completed(context.pointer, &zero, nil)
        }
        watch.withLock { $0 = watched }
    }

    /// Stops handling events (the loop forgets libusb's descriptors). Transfers still in flight
    /// after this never complete: cancel them first.
    public func stop() {
        libusb_set_pollfd_notifiers(context.pointer, nil, nil, nil)
        if let watched = watch.withLock({ $0.take() }) { loop.unwatch(watched) }
        do {
            try set.close()
        } catch {
            logger.error("closing libusb's epoll set failed", metadata: ["error": "\(error)"])
        }
    }

    /// A descriptor libusb polls (`events`: POLLIN, POLLOUT), added to the set.
    fileprivate func add(_ fd: Int32, pollEvents: Int16) {
        var events: Epoll.Events = []
        if pollEvents & Int16(POLLIN) != 0 { events.insert(.input) }
        if pollEvents & Int16(POLLOUT) != 0 { events.insert(.output) }
        let descriptor = FileDescriptor(rawValue: fd)
        do {
            try set.add(descriptor, events: events, token: UInt64(fd))
        } catch where error == .fileExists {
            // A number used again before libusb said the old one was gone.
            do {
                try set.modify(descriptor, events: events, token: UInt64(fd))
            } catch {
                logger.error("cannot watch a libusb descriptor", metadata: ["fd": "\(fd)", "error": "\(error)"])
            }
        } catch {
            logger.error("cannot watch a libusb descriptor", metadata: ["fd": "\(fd)", "error": "\(error)"])
        }
    }

    fileprivate func remove(_ fd: Int32) {
        do {
            try set.remove(FileDescriptor(rawValue: fd))
        } catch where error == .noSuchFileOrDirectory || error == .badFileDescriptor {
            // Closed already, which took it out of the set.
        } catch {
            logger.error("cannot forget a libusb descriptor", metadata: ["fd": "\(fd)", "error": "\(error)"])
        }
    }
}

/// libusb_pollfd_added_cb: libusb polls a new descriptor (a device was opened).
private let pollfdAdded: libusb_pollfd_added_cb = { fd, events, userData in
    guard let userData else { return }
    Unmanaged<USBEvents>.fromOpaque(userData).takeUnretainedValue().add(fd, pollEvents: events)
}

/// libusb_pollfd_removed_cb: libusb no longer polls a descriptor (a device closed or went away).
private let pollfdRemoved: libusb_pollfd_removed_cb = { fd, userData in
    guard let userData else { return }
    Unmanaged<USBEvents>.fromOpaque(userData).takeUnretainedValue().remove(fd)
}
