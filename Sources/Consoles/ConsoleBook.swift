import EventLoop
import Logging
import Synchronization

/// The daemon's consoles: each opened as soon as sysfs shows it (so that the boot log is kept
/// from the first byte) and closed when it goes. Its map lives on the event loop; the routes
/// read it there. ``update(_:)`` may come from any thread (the host's scans).
public final class ConsoleBook: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public var device: String
        public var interface: UInt8
    }

    public let loop: EventLoop
    private let logger: Logger
    /// Bytes of output kept per console.
    public let ringCapacity: Int
    /// Where the ttys' nodes are (/dev; a container may see the host's elsewhere).
    public let directory: String
    private var open: [Key: Console] = [:]
    /// Consoles that could not be opened, and why (the daemon may not read ttys): shown, not retried until they change.
    private var failed: [Key: (info: ConsoleInfo, reason: String)] = [:]

    public init(loop: EventLoop, ringCapacity: Int = 1 << 20, directory: String = "/dev", logger: Logger) {
        self.loop = loop
        self.ringCapacity = ringCapacity
        self.directory = directory
        self.logger = logger
    }

    /// Every console sysfs shows now, for the devices the policy shows: new ones are opened,
    /// those gone (or now another tty) closed. From any thread.
    public func update(_ found: [ConsoleInfo]) {
        guard loop.inEventLoop else {
            loop.execute { [self] in update(found) }
            return
        }
        let wanted = Dictionary(found.map { (Key(device: $0.device, interface: $0.interface), $0) }, uniquingKeysWith: { a, _ in a })
        for (key, console) in open where wanted[key] != console.info || console.isGone {
            console.close(reason: wanted[key] == nil ? "it is gone from sysfs" : "its interface has another tty now")
            open[key] = nil
        }
        for (key, failure) in failed where wanted[key] != failure.info { failed[key] = nil }
        for (key, info) in wanted where open[key] == nil && failed[key] == nil {
            do {
                let console = try Console(info: info, loop: loop, ringCapacity: ringCapacity, directory: directory, logger: logger)
                try console.start()
                open[key] = console
                console.whenGone { [weak self] in self?.forget(key, console) }
                logger.info(
                    "console opened",
                    metadata: ["usb.device": "\(info.device)", "usb.interface": "\(info.interface)", "usb.console": "\(info.tty)",
                               "usb.console.driver": "\(info.driver)"])
            } catch {
                failed[key] = (info, "cannot open \(directory)/\(info.tty): \(error)")
                logger.warning(
                    "cannot open a console",
                    metadata: ["usb.device": "\(info.device)", "usb.console": "\(info.tty)", "error": "\(error)"])
            }
        }
    }

    private func forget(_ key: Key, _ console: Console) {
        if open[key] === console { open[key] = nil }
    }

    /// The open console of `device`'s `interface`.
    public func console(device: String, interface: UInt8) -> Console? {
        loop.preconditionInEventLoop()
        return open[Key(device: device, interface: interface)]
    }

    /// `device`'s consoles: open ones, and those that could not be opened with why.
    public func consoles(device: String) -> (open: [Console], failed: [(info: ConsoleInfo, reason: String)]) {
        loop.preconditionInEventLoop()
        let consoles = open.filter { $0.key.device == device }.sorted { $0.key.interface < $1.key.interface }.map(\.value)
        let failures = failed.filter { $0.key.device == device }.sorted { $0.key.interface < $1.key.interface }.map(\.value)
        return (consoles, failures)
    }

    /// Closes every console (the daemon stops).
    public func closeAll() {
        guard loop.inEventLoop else {
            loop.execute { [self] in closeAll() }
            return
        }
        for console in open.values { console.close(reason: "the daemon stops") }
        open = [:]
    }
}
