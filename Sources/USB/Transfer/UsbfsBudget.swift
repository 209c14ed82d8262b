import CoreMetrics
import Synchronization

/// The daemon's share of the kernel's usbfs memory: the kernel gives all programs on the host
/// together `usbfs_memory_mb` (16 MiB by default) for URB buffers, and one that takes it all
/// makes every other program's transfers fail. Every URB's buffer counts against the share
/// while its transfer is in flight, and a stream's buffers for the stream's whole life; past
/// the share a request is refused before any URB (``Exhausted``), so the daemon never takes
/// more than it was given. The bytes held are in `/metrics` (`usbhttpd_usbfs_bytes_in_use`,
/// beside the share, `usbhttpd_usbfs_budget_bytes`).
///
/// Within the daemon's share, each client (its token, or its address without tokens) may hold
/// at most ``clientLimit`` (half the share by default): one greedy client's streams and
/// channels cannot take the memory every other client's transfers need (issue 24, class 4).
/// Memory taken for no client (``UsbfsShare/unattributed``) counts against the share only.
public final class UsbfsBudget: Sendable {
    /// A request that would take the daemon, or one client, past its share.
    public struct Exhausted: Error, Sendable, Equatable {
        public var wanted: Int
        public var free: Int
        public var limit: Int
        /// The client's share was the bound (not the daemon's).
        public var client: Bool

        public init(wanted: Int, free: Int, limit: Int, client: Bool = false) {
            self.wanted = wanted
            self.free = free
            self.limit = limit
            self.client = client
        }
    }

    public let limit: Int
    /// The most one client may hold at once.
    public let clientLimit: Int
    private let used = Atomic<Int>(0)
    /// Bytes held by each client that holds any (entries leave at zero: bounded by what is
    /// in flight, not by how many clients ever came).
    private let clients = Mutex<[String: Int]>([:])
    /// Made once (after the metrics system is bootstrapped), not looked up per transfer.
    private let gauge = Gauge(label: "usbhttpd_usbfs_bytes_in_use")

    /// `usbhttpd_usbfs_budget_bytes` in /metrics shows `limit`; a client may hold `clientLimit`
    /// (half of `limit` when not given).
    public init(limit: Int, clientLimit: Int? = nil) {
        self.limit = limit
        self.clientLimit = min(clientLimit ?? (limit == .max ? .max : limit / 2), limit)
        if limit < Int.max { Gauge(label: "usbhttpd_usbfs_budget_bytes").record(limit) }
    }

    /// No limit (for tests and tools).
    public static let unlimited = UsbfsBudget(limit: .max)

    /// Bytes held now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Bytes `client` holds now.
    public func inUse(by client: String) -> Int { clients.withLock { $0[client] ?? 0 } }

    /// `client`'s account in this budget (nil: memory taken for no one in particular).
    public func share(for client: String?) -> UsbfsShare { UsbfsShare(budget: self, client: client) }

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

    /// Takes `bytes` for `client`: within its own share, then within the daemon's.
    func reserve(_ bytes: Int, for client: String) throws(Exhausted) {
        try clients.withLock { (clients: inout [String: Int]) throws(Exhausted) in
            let held = clients[client] ?? 0
            guard bytes <= clientLimit - held else {
                throw Exhausted(wanted: bytes, free: clientLimit - held, limit: clientLimit, client: true)
            }
            try reserve(bytes)
            clients[client] = held + bytes
        }
    }

    /// Gives `bytes` of `client`'s back.
    func release(_ bytes: Int, for client: String) {
        clients.withLock { clients in
            let left = (clients[client] ?? 0) - bytes
            clients[client] = left > 0 ? left : nil
        }
        release(bytes)
    }

    /// The share to take of the kernel's: three quarters of `usbfs_memory_mb`, or 16 MiB when
    /// the kernel sets no limit or does not say.
    public static func defaultLimit(sysfs path: String = "/sys/module/usbcore/parameters/usbfs_memory_mb") -> Int {
        guard let text = Sysfs.attribute(path), let megabytes = Int(text), megabytes > 0 else { return 16 << 20 }
        return (megabytes << 20) * 3 / 4
    }
}

/// One client's account in the daemon's ``UsbfsBudget``: what every transfer, stream and pool
/// takes its URB memory from, so that the memory counts against the client that asked for it.
public struct UsbfsShare: Sendable {
    public let budget: UsbfsBudget
    /// nil: for no client in particular (the daemon's own, tests); the daemon's share only.
    public let client: String?

    /// Memory for no client in particular.
    public static func unattributed(_ budget: UsbfsBudget) -> UsbfsShare { UsbfsShare(budget: budget, client: nil) }
    /// No limit at all (for tests and tools).
    public static let unlimited = UsbfsShare(budget: .unlimited, client: nil)

    /// Takes `bytes`, or throws when they fit neither the client's share nor the daemon's.
    public func reserve(_ bytes: Int) throws(UsbfsBudget.Exhausted) {
        if let client { try budget.reserve(bytes, for: client) } else { try budget.reserve(bytes) }
    }

    /// Gives `bytes` back.
    public func release(_ bytes: Int) {
        if let client { budget.release(bytes, for: client) } else { budget.release(bytes) }
    }
}
