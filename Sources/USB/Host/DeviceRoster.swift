/// The devices present, as the last sysfs scan found them, and what a new scan changes: a
/// value with no I/O. A device whose address or descriptors changed was unplugged and
/// plugged again (or re-enumerated as something else): it is removed, then added.
struct DeviceRoster: Sendable {
    struct Entry: Sendable {
        var sysfs: SysfsDevice
        var info: USBDeviceInfo
        /// Every string the descriptors refer to, once read from the device.
        var allStrings: [UInt8: String]?
    }

    enum Change: Sendable, Equatable {
        case added(USBDeviceInfo)
        case removed(USBDeviceInfo)
        /// A device whose descriptors cannot be parsed: left out.
        case unreadable(id: String, DescriptorParser.Failure)
    }

    private(set) var entries: [String: Entry] = [:]
    /// Devices it denies never become entries: invisible everywhere.
    let policy: DevicePolicy

    init(policy: DevicePolicy = .allowAll) {
        self.policy = policy
    }

    /// Present devices, ordered by bus and port path.
    var devices: [USBDeviceInfo] {
        entries.values.map(\.info).sorted { a, b in
            a.bus != b.bus ? a.bus < b.bus : a.portPath.lexicographicallyPrecedes(b.portPath)
        }
    }

    subscript(id: String) -> Entry? {
        get { entries[id] }
        set { entries[id] = newValue }
    }

    /// Takes a whole scan (only devices the kernel has configured count); returns the
    /// removals, then the arrivals, each in id order.
    mutating func update(_ scan: [SysfsDevice]) -> [Change] {
        var found: [String: SysfsDevice] = [:]
        for device in scan where device.isBound { found[device.name] = device }
        var changes: [Change] = []
        for id in entries.keys.sorted() {
            let old = entries[id]!
            if let new = found[id], Self.isSameDevice(old.sysfs, new) { continue }
            entries[id] = nil
            changes.append(.removed(old.info))
        }
        for id in found.keys.sorted() {
            let device = found[id]!
            if entries[id] != nil {
                refresh(device)
                continue
            }
            do {
                let info = try Self.info(device)
                guard policy.allows(info) else { continue }
                entries[id] = Entry(sysfs: device, info: info)
                changes.append(.added(info))
            } catch {
                changes.append(.unreadable(id: id, error))
            }
        }
        return changes
    }

    /// Takes a fresh read of one present device; false when it is not the same device any
    /// more (or not present, or was not): then only a whole scan can say what changed.
    mutating func update(id: String, _ device: SysfsDevice?) -> Bool {
        guard let old = entries[id], let device, device.isBound, Self.isSameDevice(old.sysfs, device) else {
            let denied = device.flatMap { try? Self.info($0) }.map { !policy.allows($0) } ?? false
            return entries[id] == nil && (device == nil || device?.isBound == false || denied)
        }
        refresh(device)
        return true
    }

    /// What may change while a device stays plugged in: its active configuration.
    private mutating func refresh(_ device: SysfsDevice) {
        guard var entry = entries[device.name], entry.sysfs != device else { return }
        entry.sysfs = device
        entry.info.activeConfiguration = device.activeConfiguration
        entry.info.securityKeyInterfaces.formUnion(device.securityKeyInterfaces)
        entry.info.securityKeysRead = device.securityKeysRead
        entries[device.name] = entry
    }

    private static func isSameDevice(_ a: SysfsDevice, _ b: SysfsDevice) -> Bool {
        a.bus == b.bus && a.address == b.address && a.rawDescriptors == b.rawDescriptors
    }

    /// The device as the API describes it, its three sysfs strings filled in.
    static func info(_ device: SysfsDevice) throws(DescriptorParser.Failure) -> USBDeviceInfo {
        let (descriptor, configurations) = try DescriptorParser.parse(device.rawDescriptors)
        var strings: [UInt8: String] = [:]
        if descriptor.manufacturerIndex != 0 { strings[descriptor.manufacturerIndex] = device.manufacturer }
        if descriptor.productIndex != 0 { strings[descriptor.productIndex] = device.product }
        if descriptor.serialNumberIndex != 0 { strings[descriptor.serialNumberIndex] = device.serial }
        var info = USBDeviceInfo(
            bus: device.bus, address: device.address, portPath: device.portPath, speed: device.speed,
            descriptor: descriptor, configurations: configurations, activeConfiguration: device.activeConfiguration,
            strings: strings)
        info.securityKeyInterfaces = device.securityKeyInterfaces
        info.securityKeysRead = device.securityKeysRead
        return info
    }
}
