import CoreMetrics
import Synchronization

/// The daemon's share of the kernel's usbfs memory: the kernel gives all programs on the host
/// together `usbfs_memory_mb` (16 MiB by default) for URB buffers, and one that takes it all
/// makes every other program's transfers fail. Every URB's buffer counts against the share
/// while its transfer is in flight, and a stream's buffers for the stream's whole life; past
/// the share a request is refused before any URB (``Exhausted``), so the daemon never takes
/// more than it was given. The bytes held are in `/metrics` (`usbhttpd_usbfs_bytes_in_use`,
/// beside the share, `usbhttpd_usbfs_budget_bytes`).
public final class UsbfsBudget: Sendable {
    /// A request that would take the daemon past its share.
    public struct Exhausted: Error, Sendable, Equatable {
        public var wanted: Int
        public var free: Int
        public var limit: Int

        public init(wanted: Int, free: Int, limit: Int) {
            self.wanted = wanted
            self.free = free
            self.limit = limit
        }
    }

    public let limit: Int
    private let used = Atomic<Int>(0)
    /// Made once (after the metrics system is bootstrapped), not looked up per transfer.
    private let gauge = Gauge(label: "usbhttpd_usbfs_bytes_in_use")

    /// `usbhttpd_usbfs_budget_bytes` in /metrics shows `limit`.
    public init(limit: Int) {
        self.limit = limit
        if limit < Int.max { Gauge(label: "usbhttpd_usbfs_budget_bytes").record(limit) }
    }

    /// No limit (for tests and tools).
    public static let unlimited = UsbfsBudget(limit: .max)

    /// Bytes held now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Takes `bytes` from the share, or throws when they do not fit.
    public func reserve(_ bytes: Int) throws(Exhausted) {
        var current = used.load(ordering: .relaxed)
        while true {
            guard bytes <= limit - current else { throw Exhausted(wanted: bytes, free: limit - current, limit: limit) }
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        gauge.record(current + bytes)
    }

    /// Gives `bytes` back.
    public func release(_ bytes: Int) {
        let now = used.subtract(bytes, ordering: .relaxed).newValue
        gauge.record(now)
    }

    /// The share to take of the kernel's: three quarters of `usbfs_memory_mb`, or 16 MiB when
    /// the kernel sets no limit or does not say.
    public static func defaultLimit(sysfs path: String = "/sys/module/usbcore/parameters/usbfs_memory_mb") -> Int {
        guard let text = Sysfs.attribute(path), let megabytes = Int(text), megabytes > 0 else { return 16 << 20 }
        return (megabytes << 20) * 3 / 4
    }
}
