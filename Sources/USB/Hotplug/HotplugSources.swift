import LinuxSystem
import SystemPackage

/// What tells the ``HotplugMonitor`` that devices may have changed: a descriptor it waits on,
/// drained when readable.
protocol HotplugSource: Sendable {
    var descriptor: FileDescriptor { get }
    /// Reads what is queued (into `buffer`, the monitor's): whether the device list may have
    /// changed. A thrown error means the source is broken (not merely empty).
    func drain(using buffer: inout [UInt8]) throws(Errno) -> Bool
    func close() throws(Errno)
}

/// The kernel's uevents for USB devices (added, configured, removed).
struct UEventSource: HotplugSource {
    let socket: UEventSocket

    init() throws(Errno) { socket = try UEventSocket.open() }

    var descriptor: FileDescriptor { socket.descriptor }

    func drain(using buffer: inout [UInt8]) throws(Errno) -> Bool {
        var changed = false
        while true {
            switch try socket.receive(into: &buffer) {
            case .message(let count):
                if UEvent(buffer.prefix(count))?.concernsUSBDevice == true { changed = true }
            case .overflow: changed = true
            case .empty: return changed
            }
        }
    }

    func close() throws(Errno) { try socket.close() }
}

/// usbfs nodes appearing and going (`/dev/bus/usb` and each bus folder in it): the fallback
/// where netlink is refused. It does not see a device become configured, so the monitor
/// rescans for a while after each change.
struct DeviceNodeSource: HotplugSource {
    let inotify: Inotify
    let root: String

    init(root: String = "/dev/bus/usb") throws(Errno) {
        inotify = try Inotify.create()
        self.root = root
        do {
            try inotify.watchEntries(of: root)
            try watchBuses()
        } catch {
            try? inotify.close()
            throw error
        }
    }

    var descriptor: FileDescriptor { inotify.descriptor }

    /// New bus folders are watched too.
    func drain(using buffer: inout [UInt8]) throws(Errno) -> Bool {
        let changed = try inotify.drain(using: &buffer)
        if changed { try watchBuses() }
        return changed
    }

    private func watchBuses() throws(Errno) {
        for bus in Sysfs.entries(root) ?? [] {
            do {
                try inotify.watchEntries(of: root + "/" + bus)
            } catch where error == .noSuchFileOrDirectory || error == .notDirectory {
                // Gone, or not a bus folder: nothing to watch.
            }
        }
    }

    func close() throws(Errno) { try inotify.close() }
}
