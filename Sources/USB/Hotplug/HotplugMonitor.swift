import CLinux
import Glibc
import Threads

/// Tells its owner when the set of USB devices may have changed, without udevd. Its owner
/// then rescans sysfs (``USBHost``), so a missed or merged notice costs nothing but a
/// little delay: the scan, not the notice, says what changed.
///
/// Sources, best first:
/// - `netlink`: the kernel's uevents for USB devices (added, configured, removed);
/// - `inotify`: usbfs nodes appearing and going, with rescans every 20 ms for 1 s after each
///   change (a node appears before the device is configured, and nothing tells when it is);
/// - `polling`: a rescan every second, when neither is allowed.
///
/// libusb's own hot-plug is not used: with device discovery off it has nothing to report,
/// and with it on, Debian's libusb waits for udevd's messages, which are never sent here.
public final class HotplugMonitor: Sendable {
    public enum Source: String, Sendable {
        case netlink, inotify, polling
    }

    public let source: Source
    private let uevents: UEventSocket?
    private let nodes: DeviceNodeWatch?
    private let epollFD: Int32
    private let wakeFD: Int32
    private let onChange: @Sendable () -> Void

    /// Starts watching on a thread of its own; `onChange` runs on that thread.
    /// `allowNetlink` and `allowInotify` false skip those sources (to test the fallbacks).
    public init(onChange: @escaping @Sendable () -> Void, allowNetlink: Bool = true, allowInotify: Bool = true) {
        self.onChange = onChange
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        if allowNetlink, let socket = UEventSocket() {
            uevents = socket
            nodes = nil
            source = .netlink
        } else if allowInotify, let watch = DeviceNodeWatch() {
            uevents = nil
            nodes = watch
            source = .inotify
        } else {
            uevents = nil
            nodes = nil
            source = .polling
        }
        add(wakeFD, token: 0)
        if let uevents { add(uevents.fd, token: 1) }
        if let nodes { add(nodes.fd, token: 2) }
        NamedThread.start(name: "usb-hotplug") { [self] in loop() }
    }

    /// Ends the thread.
    public func stop() {
        _ = eventfd_write(wakeFD, 1)
    }

    private func add(_ fd: Int32, token: UInt64) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = token
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
    }

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 4)
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        /// Rescans still owed after an inotify change.
        var followUps = 0
        defer {
            close(wakeFD)
            close(epollFD)
        }
        while true {
            let timeout: Int32 = source == .polling ? 1000 : followUps > 0 ? 20 : -1
            let count = epoll_wait(epollFD, &events, Int32(events.count), timeout)
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            var changed = count == 0 && (source == .polling || followUps > 0)
            if count == 0 && followUps > 0 { followUps -= 1 }
            for event in events.prefix(Int(count)) {
                switch event.data.u64 {
                case 0: return
                case 1: changed = drainUEvents(&buffer) || changed
                default:
                    if nodes?.drain() == true {
                        changed = true
                        followUps = 50
                    }
                }
            }
            if changed { onChange() }
        }
    }

    private func drainUEvents(_ buffer: inout [UInt8]) -> Bool {
        guard let uevents else { return false }
        var changed = false
        while true {
            switch uevents.receive(into: &buffer) {
            case .event(let event): if event?.concernsUSBDevice == true { changed = true }
            case .overflow: changed = true
            case .empty: return changed
            }
        }
    }
}
