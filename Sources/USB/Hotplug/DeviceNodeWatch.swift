import CLinux
import Glibc

/// inotify on the usbfs tree (`/dev/bus/usb` and each bus folder in it): a node appears when
/// a device is added and goes when it is removed. The fallback where netlink is refused;
/// it does not see a device become configured, so its user rescans for a while after
/// each change.
final class DeviceNodeWatch: Sendable {
    let fd: Int32
    private let root: String

    init?(root: String = "/dev/bus/usb") {
        let fd = inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK))
        guard fd >= 0 else { return nil }
        guard inotify_add_watch(fd, root, UInt32(IN_CREATE | IN_DELETE | IN_ONLYDIR)) >= 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
        self.root = root
        watchBuses()
    }

    deinit { close(fd) }

    /// Reads what is queued; true when something changed. New bus folders are watched too
    /// (watching one twice is harmless).
    func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var changed = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            changed = true
        }
        if changed { watchBuses() }
        return changed
    }

    private func watchBuses() {
        for bus in Sysfs.entries(root) {
            _ = inotify_add_watch(fd, root + "/" + bus, UInt32(IN_CREATE | IN_DELETE))
        }
    }
}
