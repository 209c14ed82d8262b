import EventLoop
import LinuxSystem
import Logging
import Synchronization
import SystemPackage

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
/// It runs on an event loop of its own (the thread `usb-hotplug`): the source's descriptor is
/// one of its watches, the follow-up and polling rescans its timers. If the source breaks (or
/// the loop's epoll does), the failure is logged and kept (``failure``): the owner then reports
/// itself not ready, since the device list would silently go stale.
///
/// libusb's own hot-plug is not used: with device discovery off it has nothing to report,
/// and with it on, Debian's libusb waits for udevd's messages, which are never sent here.
public final class HotplugMonitor: Sendable {
    public enum Source: String, Sendable {
        case netlink, inotify, polling
    }

    public let source: Source
    private let loop: EventLoop
    private let follower: Follower
    private let failed: FailureNote

    /// Starts watching on a thread of its own; `onChange` runs on that thread, and
    /// `onFailure` once if the source or the thread fails. `allowNetlink` and `allowInotify`
    /// false skip those sources (to test the fallbacks).
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
        let failed = FailureNote()
        self.failed = failed
        let fail: @Sendable (Errno) -> Void = { error in
            failed.reason.withLock { $0 = "\(source.rawValue): \(error)" }
            logger.critical(
                "the hot-plug thread failed: devices are no longer followed, and /readyz says so",
                metadata: ["usb.hotplug.source": "\(source.rawValue)", "error": "\(error)"])
            onFailure()
        }
        do {
            loop = try EventLoop(name: "usb-hotplug", logger: logger, onFailure: fail)
        } catch {
            try? notices?.close()
            throw error
        }
        follower = Follower(source: source, notices: notices, loop: loop, logger: logger, onChange: onChange, fail: fail)
        do {
            try follower.start()
        } catch {
            try? notices?.close()
            loop.stop()
            throw error
        }
    }

    /// Why the monitor stopped following devices, nil while it follows them.
    public var failure: String? { failed.reason.withLock { $0 } }

    /// Stops following (the source closed) and ends the thread.
    public func stop() {
        loop.execute { [follower] in follower.end() }
        loop.stop()
    }
}

/// Why the monitor failed: written on its thread, read by readiness checks.
private final class FailureNote: Sendable {
    let reason = Mutex<String?>(nil)
}

/// The monitor's state, on its loop: the source's watch, the rescans still owed after an
/// inotify change, the buffer notices are read into.
private final class Follower: @unchecked Sendable {
    let source: HotplugMonitor.Source
    let notices: (any HotplugSource)?
    let loop: EventLoop
    let logger: Logger
    let onChange: @Sendable () -> Void
    let fail: @Sendable (Errno) -> Void
    private var buffer = [UInt8](repeating: 0, count: 16 << 10)
    private var watch: EventLoop.Watch?
    /// Rescans still owed after an inotify change (one each 20 ms: a node appears before the
    /// device is configured, and nothing tells when it is).
    private var followUps = 0
    private var followUpPending = false
    private var ended = false

    init(
        source: HotplugMonitor.Source, notices: (any HotplugSource)?, loop: EventLoop, logger: Logger,
        onChange: @escaping @Sendable () -> Void, fail: @escaping @Sendable (Errno) -> Void
    ) {
        self.source = source
        self.notices = notices
        self.loop = loop
        self.logger = logger
        self.onChange = onChange
        self.fail = fail
    }

    /// Watches the source, or polls every second without one. From the monitor's init.
    func start() throws(Errno) {
        if let notices {
            watch = try loop.watch(notices.descriptor, for: .input) { [self] _ in ready() }
        } else {
            loop.schedule(after: 1000) { [self] in poll() }
        }
    }

    private func ready() {
        guard !ended, let notices else { return }
        do {
            guard try notices.drain(using: &buffer) else { return }
        } catch {
            end()
            fail(error)
            return
        }
        if source == .inotify {
            followUps = 50
            scheduleFollowUp()
        }
        onChange()
    }

    private func scheduleFollowUp() {
        guard !followUpPending else { return }
        followUpPending = true
        loop.schedule(after: 20) { [self] in
            followUpPending = false
            guard !ended, followUps > 0 else { return }
            followUps -= 1
            onChange()
            scheduleFollowUp()
        }
    }

    private func poll() {
        guard !ended else { return }
        onChange()
        loop.schedule(after: 1000) { [self] in poll() }
    }

    /// Stops watching and closes the source, once.
    func end() {
        loop.preconditionInEventLoop()
        guard !ended else { return }
        ended = true
        if let watch { loop.unwatch(watch) }
        do {
            try notices?.close()
        } catch {
            logger.error("closing the hot-plug source failed", metadata: ["error": "\(error)"])
        }
    }
}
