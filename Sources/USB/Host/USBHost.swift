import EventLoop
import Glibc
import LinuxSystem
import SystemPackage
import Logging
import Synchronization

/// The machine's USB devices, found in sysfs and kept current by a ``HotplugMonitor``.
/// Runs on a thread of its own (opening a device blocks). Keeps one ``DeviceSession`` per
/// device in use (opened on first use, closed when the device goes), numbers every arrival
/// and removal in ``changes``, and remembers which devices went away (a request for one is
/// told "gone", not "never seen").
///
/// A device counts as present once the kernel's generic USB driver is bound to it: the
/// kernel has then chosen its configuration and made its interfaces, so a client told of it
/// can use it at once.
public actor USBHost {
    private let context: USBContext
    private let loop: EventLoop
    /// The daemon's share of usbfs memory, for every session.
    public nonisolated let usbfsBudget: UsbfsBudget
    /// Milliseconds a control request may keep endpoint 0 while another client's waits (``ControlQueue``).
    private let controlHoldLimit: Int
    private let events: USBEvents
    private let executor: EventLoop
    let logger: Logger
    let sysfsRoot: String
    public nonisolated let changes: ChangeLog
    private var monitor: HotplugMonitor?
    private var stopping = false

    /// Present devices, as the last scan found them.
    var roster: DeviceRoster
    /// Open sessions by id, each for one address (a replugged device has a new address).
    private var sessions: [String: (address: UInt8, session: DeviceSession)] = [:] {
        didSet { openSessions.withLock { [sessions] in $0 = sessions.mapValues(\.session) } }
    }
    /// `sessions`, readable from any thread without entering the actor (``openSession(id:)``).
    private nonisolated let openSessions = Mutex<[String: DeviceSession]>([:])
    /// When each id that went away was last removed, until it is back.
    private var removals: [String: Double] = [:]
    /// Devices a client drove that may come back as something else (``ReenumerationGuard``).
    var reenumeration = ReenumerationGuard()
    /// False once the kernel refused a write of the guard's (no privilege, a read-only sysfs):
    /// said once in the log, not tried again.
    var reenumerationWritable = true
    /// The task that rescans when the next watch runs out.
    var reenumerationTimer: Task<Void, Never>?
    /// Told the devices shown after each scan, on the host's thread (``afterEachScan(_:)``).
    private nonisolated let scanWatchers = Mutex<[@Sendable ([USBDeviceInfo]) -> Void]>([])
    private nonisolated let claimWatchers = Mutex<[@Sendable (String) -> Void]>([])
    /// The device list as the last scan left it, and whether anything may have changed since:
    /// readable from any thread (``freshDevices()``).
    private nonisolated let listing = Mutex(Listing())

    private struct Listing {
        var devices: [USBDeviceInfo] = []
        /// Notices of changes seen, and the notice count the last scan started after.
        var notices = 0
        var scanned = -1
        /// The monitor reports every change (netlink): only then can a scan be trusted until
        /// the next notice.
        var trusted = false
    }

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Handles `context`'s events on `loop`, where device sessions run too. Call
    /// ``startMonitoring(allowNetlink:allowInotify:)`` to follow arrivals and removals as they happen.
    /// `policy` decides which devices exist for clients (``DevicePolicy``).
    public init(
        context: USBContext, loop: EventLoop, logger: Logger, policy: DevicePolicy = DevicePolicy(),
        sysfsRoot: String = "/sys/bus/usb/devices", changes: ChangeLog = ChangeLog(), usbfsBudget: UsbfsBudget = .unlimited,
        controlHoldLimit: Int = 5000
    ) throws {
        self.usbfsBudget = usbfsBudget
        self.controlHoldLimit = controlHoldLimit
        self.roster = DeviceRoster(policy: policy)
        self.context = context
        self.loop = loop
        self.events = try USBEvents(context: context, loop: loop, logger: logger)
        self.executor = try EventLoop(name: "usb-host", logger: logger)
        self.logger = logger
        self.sysfsRoot = sysfsRoot
        self.changes = changes
    }

    /// Reads the devices present now and starts following changes; returns the monitor's
    /// source (see ``HotplugMonitor`` for `allowNetlink` and `allowInotify`).
    @discardableResult
    public func startMonitoring(allowNetlink: Bool = true, allowInotify: Bool = true) throws(Errno) -> HotplugMonitor.Source {
        _ = refresh()
        let monitor = try HotplugMonitor(
            logger: logger, allowNetlink: allowNetlink, allowInotify: allowInotify,
            onChange: { [weak self] in
                guard let self else { return }
                // At once, on the monitor's thread: the list is not trusted until rescanned.
                listing.withLock { $0.notices += 1 }
                Task { await self.refresh() }
            },
            onFailure: { [weak self] in
                // Nothing tells of changes any more: every listing scans.
                self?.listing.withLock { $0.trusted = false }
            })
        self.monitor = monitor
        // inotify misses arrivals between its follow-up rescans, polling for up to a second:
        // with them every listing scans.
        listing.withLock { $0.trusted = monitor.source == .netlink }
        logger.info("following USB devices", metadata: ["usb.hotplug.source": "\(monitor.source.rawValue)"])
        return monitor.source
    }

    /// Ready once devices are followed, until shutdown: (true, the hot-plug source), or
    /// (false, why not).
    public var readiness: (isReady: Bool, reason: String) {
        if stopping { return (false, "shutting down") }
        guard let monitor else { return (false, "not following devices yet") }
        if let failure = monitor.failure { return (false, "the hot-plug thread failed (\(failure))") }
        return (true, monitor.source.rawValue)
    }

    /// Every device present now (a fresh scan), ordered by bus and port path.
    public func devices() -> [USBDeviceInfo] {
        refresh()
    }

    /// Every device present now, without a scan and without entering the actor, when the last
    /// scan is known to be current (the kernel has told of no change since: netlink only);
    /// nil otherwise, and then ``devices()`` scans. With the number of that scan, which
    /// changes whenever the list may have.
    public nonisolated func freshDevices() -> (generation: Int, devices: [USBDeviceInfo])? {
        listing.withLock { listing in
            listing.trusted && listing.scanned == listing.notices ? (listing.scanned, listing.devices) : nil
        }
    }

    /// Device `id` with every string its descriptors refer to (read from the device once),
    /// or nil when absent.
    public func device(id: String) async -> USBDeviceInfo? {
        refresh(id: id)
        guard let entry = roster[id] else { return nil }
        if entry.allStrings == nil, let session = try? session(entry) {
            let strings = await readStrings(session, indexes: entry.info.stringIndexes)
            // The roster may have changed while the strings were read.
            if var current = roster[id], current.sysfs.address == entry.sysfs.address {
                current.allStrings = strings.merging(current.info.strings) { read, _ in read }
                roster[id] = current
            }
        }
        guard let entry = roster[id] else { return nil }
        var info = entry.info
        if let strings = entry.allStrings { info.strings = strings }
        return info
    }

    /// The open session of device `id`, opened now if it is not yet; nil when absent.
    public func session(id: String) throws(USBError) -> DeviceSession? {
        if roster[id] == nil { refresh(id: id) }
        guard let entry = roster[id] else { return nil }
        settleReenumeration(of: entry)
        return try session(roster[id] ?? entry)
    }

    /// The session of device `id` if one is open and its device has not gone, without
    /// entering the actor (so without a thread switch); nil otherwise, and then
    /// ``session(id:)`` opens one.
    public nonisolated func openSession(id: String) -> DeviceSession? {
        guard let session = openSessions.withLock({ $0[id] }), !session.isGone else { return nil }
        return session
    }

    /// The device on port `port` of hub `hub` ("usb1", "1-2"), and whether the policy shows it;
    /// nil when nothing is plugged there.
    public func portDevice(hub: String, port: UInt8) -> (id: String, shown: Bool)? {
        let child = hub.hasPrefix("usb") ? "\(hub.dropFirst(3))-\(port)" : "\(hub).\(port)"
        if roster[child] != nil { return (child, true) }
        guard Sysfs.exists(sysfsRoot + "/" + child) else { return nil }
        // Present but not in the roster: denied by the policy (or not configured, or being
        // reset, yet).
        return (child, false)
    }

    /// Every device plugged behind `id` (a hub "3-1", or a root hub "usb3": every device whose
    /// port path extends its own; with `including`, `id` itself too), and whether the policy
    /// shows each. One not in the roster counts as hidden (denied, or not configured yet).
    public func devices(behind id: String, including: Bool) -> [(id: String, shown: Bool)] {
        guard let names = Sysfs.entries(sysfsRoot) else { return [(id, false)] }  // unreadable: nothing is known safe
        let prefix = id.hasPrefix("usb") ? "\(id.dropFirst(3))-" : "\(id)."
        return names.filter { !$0.contains(":") && ($0.hasPrefix(prefix) || (including && $0 == id)) }.sorted()
            .map { ($0, roster[$0] != nil) }
    }

    /// When device `id` was last removed (seconds since the epoch), nil if it is present or
    /// was never seen.
    public func removedAt(id: String) -> Double? {
        roster[id] == nil ? removals[id] : nil
    }

    /// The device descriptor then every configuration descriptor with all that follows it
    /// (wTotalLength bytes): Linux's sysfs `descriptors` file, the kernel's copy of what the
    /// device sent. Nil when no device has `id`.
    public func rawDescriptors(id: String) -> [UInt8]? {
        refresh(id: id)
        return roster[id]?.sysfs.rawDescriptors
    }

    /// Marks the host not ready (``readiness``), first thing in a graceful shutdown, so that
    /// load balancers stop sending clients while requests still finish.
    public func beginShutdown() {
        stopping = true
    }

    /// Stops following changes, closes every session at once (transfers cancelled, claims
    /// released, kernel drivers attached again), then stops the event thread.
    public func shutdown() async {
        stopping = true
        monitor?.stop()
        monitor = nil
        perform(reenumeration.stop())
        reenumerationTimer?.cancel()
        let open = sessions.values.map(\.session)
        sessions = [:]
        // All at once: each may wait (up to 2 s) for its transfers to come back.
        await withTaskGroup(of: Void.self) { group in
            for session in open { group.addTask { await session.close() } }
        }
        events.stop()
    }

    // MARK: Scanning

    /// Scans sysfs and records what changed: removals first, then arrivals, each in id order.
    @discardableResult
    private func refresh() -> [USBDeviceInfo] {
        let notices = listing.withLock { $0.notices }
        defer {
            // Current unless a notice came during the scan.
            let devices = roster.devices
            listing.withLock { listing in
                guard listing.notices == notices else { return }
                listing.devices = devices
                listing.scanned = notices
            }
        }
        let known = roster.entries.mapValues(\.sysfs)
        guard let scanned = SysfsDevice.scan(root: sysfsRoot, known: known) else {
            // Not the same as no devices: nothing changes until a scan can read the folder.
            logger.warning("cannot read the USB devices' sysfs folder; keeping the devices as they were",
                metadata: ["usb.sysfs": "\(sysfsRoot)", "error": "\(String(cString: strerror(errno)))"])
            return roster.devices
        }
        let found = roster.update(scanned)
        // Before anyone is told: a device a client drove that left is watched (its bus armed),
        // and what arrived on an armed bus is authorized (or kept from the host's drivers)
        // before a client told of it can claim it.
        let drivenLeft = found.compactMap { change -> USBDeviceInfo? in
            guard case .removed(let info) = change, sessions[info.id] != nil else { return nil }
            return info
        }
        guardReenumerations(scanned: scanned, drivenLeft: drivenLeft)
        for change in found {
            switch change {
            case .removed(let info):
                removed(info)
            case .added(let info):
                removals[info.id] = nil
                changes.append(.added, info)
                USBMetrics.deviceChange(.added)
                logger.info("device added", metadata: ["usb.device": "\(info.id)", "usb.address": "\(info.address)"])
            case .unreadable(let id, let failure):
                logger.warning(
                    "cannot read a device's descriptors", metadata: ["usb.device": "\(id)", "error": "\(failure)"])
            }
        }
        USBMetrics.devices(present: roster.entries.count)
        tellSessionsWhatWasLearned()
        let devices = roster.devices
        for watcher in scanWatchers.withLock({ $0 }) { watcher(devices) }
        return devices
    }

    /// Calls `body` with the devices the policy shows after every scan (on the host's thread;
    /// a scan follows each notice: a device, a HID driver's bind, a USB serial tty): what
    /// follows more than the device list (consoles) looks again then.
    public nonisolated func afterEachScan(_ body: @escaping @Sendable ([USBDeviceInfo]) -> Void) {
        scanWatchers.withLock { $0.append(body) }
    }

    /// Calls `body` with a device's id each time one of its interfaces is claimed or released
    /// (on the loop, inside the session: `body` must only take note).
    public nonisolated func afterClaimChange(_ body: @escaping @Sendable (String) -> Void) {
        claimWatchers.withLock { $0.append(body) }
    }

    private nonisolated func tellClaimWatchers(_ id: String) {
        for watcher in claimWatchers.withLock({ $0 }) { watcher(id) }
    }

    /// Rereads one device only, unless it came, went or changed: then a whole scan.
    private func refresh(id: String) {
        if !roster.update(id: id, SysfsDevice(name: id, root: sysfsRoot)) { refresh() }
        tellSessionsWhatWasLearned()
    }

    /// Open sessions hear what scans learned since they opened (security keys whose HID driver
    /// bound later): the checks on the loop read the session's copy.
    private func tellSessionsWhatWasLearned() {
        for (id, open) in sessions {
            guard let entry = roster[id], entry.sysfs.address == open.address else { continue }
            open.session.learned(securityKeys: entry.info.securityKeyInterfaces, allRead: entry.info.securityKeysRead)
        }
    }

    private func removed(_ info: USBDeviceInfo) {
        let id = info.id
        removals[id] = DeviceChange.now()
        if removals.count > 4096, let oldest = removals.min(by: { $0.value < $1.value }) {
            removals[oldest.key] = nil
        }
        if let open = sessions.removeValue(forKey: id) {
            open.session.deviceRemoved()
            Task { await open.session.close(deviceRemoved: true) }
        }
        changes.append(.removed, info)
        USBMetrics.deviceChange(.removed)
        logger.info("device removed", metadata: ["usb.device": "\(id)", "usb.address": "\(info.address)"])
    }

    // MARK: Sessions

    private func session(_ entry: DeviceRoster.Entry) throws(USBError) -> DeviceSession {
        var entry = entry
        let id = entry.info.id
        if !entry.sysfs.securityKeysRead {
            // Its HID driver bound after the last scan: what the session's checks need first.
            let (keys, complete) = Sysfs.securityKeyInterfaces(device: id, root: sysfsRoot)
            entry.sysfs.securityKeyInterfaces = keys
            entry.sysfs.securityKeysRead = complete
            entry.info.securityKeyInterfaces.formUnion(keys)
            roster[id] = entry
        }
        if let open = sessions[id], open.address == entry.sysfs.address, !open.session.isGone { return open.session }
        let handle = try context.open(node: entry.sysfs.nodePath, loop: loop)
        let session = try DeviceSession(
            io: handle, id: id, address: entry.sysfs.address, configurations: entry.info.configurations,
            activeConfiguration: entry.sysfs.activeConfiguration, loop: loop, budget: usbfsBudget, info: entry.info,
            controlHoldLimit: controlHoldLimit,
            claimsChanged: { [weak self] id in self?.tellClaimWatchers(id) })
        if let stale = sessions[id]?.session { Task { await stale.close() } }
        sessions[id] = (entry.sysfs.address, session)
        logger.debug("device opened", metadata: ["usb.device": "\(id)"])
        return session
    }

    /// Every string `indexes` name, in the device's first language (none if it has none).
    private func readStrings(_ session: DeviceSession, indexes: Set<UInt8>) async -> [UInt8: String] {
        guard !indexes.isEmpty else { return [:] }
        guard let language = (try? await session.stringLanguages(logger: logger))?.first else {
            logger.debug("device has no string languages", metadata: ["usb.device": "\(session.id)"])
            return [:]
        }
        var strings: [UInt8: String] = [:]
        for index in indexes.sorted() {
            strings[index] = try? await session.string(index: index, language: language, logger: logger)
        }
        return strings
    }
}
