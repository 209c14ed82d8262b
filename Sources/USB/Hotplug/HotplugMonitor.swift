import LinuxSystem
import Logging
import Synchronization
import SystemPackage
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
/// It runs on a thread of its own. If that thread fails (its epoll set or its source
/// breaks), the failure is logged and kept (``failure``): the owner then reports itself not
/// ready, since the device list would silently go stale.
///
/// libusb's own hot-plug is not used: with device discovery off it has nothing to report,
/// and with it on, Debian's libusb waits for udevd's messages, which are never sent here.
public final class HotplugMonitor: Sendable {
    public enum Source: String, Sendable {
        case netlink, inotify, polling
    }

    public let source: Source
    private let notices: (any HotplugSource)?
    private let epoll: Epoll
    private let wake: EventCounter
    private let onChange: @Sendable () -> Void
    private let onFailure: @Sendable () -> Void
    private let logger: Logger
    private let failed = Mutex<String?>(nil)
    private let stopped = Atomic(false)

    /// Starts watching on a thread of its own; `onChange` runs on that thread, and
    /// `onFailure` once if the thread fails. `allowNetlink` and `allowInotify` false skip those
    /// sources (to test the fallbacks).
    public convenience init(
        logger: Logger, allowNetlink: Bool = true, allowInotify: Bool = true,
        onChange: @escaping @Sendable () -> Void, onFailure: @escaping @Sendable () -> Void = {}
    ) throws(Errno) {
        var chosen: (Source, (any HotplugSource)?) = (.polling, nil)
        if allowNetlink, let socket = try? UEventSource() {
            chosen = (.netlink, socket)
        } else if allowInotify, let watch = try? DeviceNodeSource() {
            chosen = (.inotify, watch)
        }
        try self.init(source: chosen.0, notices: chosen.1, logger: logger, onChange: onChange, onFailure: onFailure)
    }

    /// With a given source (tests give one that fails).
    init(
        source: Source, notices: (any HotplugSource)?, logger: Logger, onChange: @escaping @Sendable () -> Void,
        onFailure: @escaping @Sendable () -> Void
    ) throws(Errno) {
        self.source = source
        self.notices = notices
        self.logger = logger
        self.onChange = onChange
        self.onFailure = onFailure
        do {
            epoll = try Epoll.create()
            wake = try EventCounter.create()
        } catch {
            try? notices?.close()
            throw error
        }
        do {
            try epoll.add(wake.descriptor, events: .input, token: 0)
            if let notices { try epoll.add(notices.descriptor, events: .input, token: 1) }
        } catch {
            try? notices?.close()
            try? wake.close()
            try? epoll.close()
            throw error
        }
        NamedThread.start(name: "usb-hotplug") { [self] in run() }
    }

    /// Why the monitor stopped following devices, nil while it follows them.
    public var failure: String? { failed.withLock { $0 } }

    /// Ends the thread.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        do {
            try wake.signal()
        } catch {
            logger.error("cannot wake the hot-plug thread to stop it", metadata: ["error": "\(error)"])
        }
    }

    private func run() {
        do {
            try follow()
        } catch {
            failed.withLock { $0 = "\(source.rawValue): \(error)" }
            logger.critical(
                "the hot-plug thread failed: devices are no longer followed, and /readyz says so",
                metadata: ["usb.hotplug.source": "\(source.rawValue)", "error": "\(error)"])
            onFailure()
        }
        do {
            try notices?.close()
            try wake.close()
            try epoll.close()
        } catch {
            logger.error("closing the hot-plug descriptors failed", metadata: ["error": "\(error)"])
        }
    }

    private func follow() throws(Errno) {
        var events = Epoll.EventBuffer(capacity: 4)
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        /// Rescans still owed after an inotify change.
        var followUps = 0
        while !stopped.load(ordering: .acquiring) {
            let timeout: Int32 = source == .polling ? 1000 : followUps > 0 ? 20 : -1
            let count = try epoll.wait(into: &events, timeout: timeout)
            var changed = count == 0 && (source == .polling || followUps > 0)
            if count == 0 && followUps > 0 { followUps -= 1 }
            for index in 0..<count {
                guard events[index].token == 1, let notices else { continue }  // 0: stop() woke it
                if try notices.drain(using: &buffer) {
                    changed = true
                    if source == .inotify { followUps = 50 }
                }
            }
            if changed && !stopped.load(ordering: .acquiring) { onChange() }
        }
    }
}
