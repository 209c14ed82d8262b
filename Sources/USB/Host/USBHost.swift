import Logging
import Threads

/// The machine's USB devices as libusb sees them. Runs on a thread of its own (its calls
/// block), keeps one ``DeviceSession`` per present device (opened once, closed when the
/// device is gone) and caches what does not change while a device stays plugged in: its strings.
public actor USBHost {
    private let context: USBContext
    private let events: USBEventThread
    private let executor: ThreadExecutor
    private let logger: Logger
    /// Devices seen at the last enumeration, by "<bus>:<address>" (an address is not
    /// reused until the bus wraps around, so a replugged device is read anew).
    private var known: [String: USBDeviceInfo] = [:]
    /// Open devices, by "<bus>:<address>".
    private var sessions: [String: DeviceSession] = [:]

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Starts libusb's event thread for `context`.
    public init(context: USBContext, logger: Logger) {
        self.context = context
        self.events = USBEventThread(context: context)
        self.executor = ThreadExecutor(name: "usb-host")
        self.logger = logger
    }

    /// Every device present now, ordered by bus and port path.
    public func devices() throws(USBError) -> [USBDeviceInfo] {
        var seen: [String: USBDeviceInfo] = [:]
        for device in try context.devices() {
            let key = Self.key(device)
            do {
                seen[key] = try describe(device, cached: known[key])
            } catch {
                logger.warning(
                    "cannot read a device's descriptors",
                    metadata: ["usb.bus": "\(device.busNumber)", "usb.address": "\(device.address)", "error": "\(error)"])
            }
        }
        known = seen
        for (key, session) in sessions where seen[key] == nil {
            sessions[key] = nil
            Task { await session.close() }
        }
        return seen.values.sorted { a, b in
            a.bus != b.bus ? a.bus < b.bus : a.portPath.lexicographicallyPrecedes(b.portPath)
        }
    }

    /// The device with `id`, or nil. Reads only that device.
    public func device(id: String) throws(USBError) -> USBDeviceInfo? {
        guard let device = try find(id: id) else { return nil }
        let info = try describe(device, cached: known[Self.key(device)])
        known[Self.key(device)] = info
        return info
    }

    /// The open session of the device with `id`, opened now if it is not yet; nil when no
    /// device has `id`.
    public func session(id: String) throws(USBError) -> DeviceSession? {
        guard let device = try find(id: id) else { return nil }
        return try session(for: device)
    }

    /// The device descriptor then every configuration descriptor with all that follows it
    /// (wTotalLength bytes), as GET_DESCRIPTOR returns them from the device: the layout of
    /// Linux's sysfs `descriptors` file. Nil when no device has `id`.
    public func rawDescriptors(id: String) throws(USBError) -> [UInt8]? {
        guard let device = try find(id: id) else { return nil }
        let handle = try session(for: device).handle
        var bytes = try handle.descriptor(type: 0x01, index: 0, length: 18)
        let count = bytes.count >= 18 ? bytes[17] : 0
        for index in 0..<count {
            let head = try handle.descriptor(type: 0x02, index: index, length: 9)
            guard head.count >= 4 else { throw .io }
            let total = Int(head[2]) | Int(head[3]) << 8
            bytes += try handle.descriptor(type: 0x02, index: index, length: total)
        }
        return bytes
    }

    /// Closes every session (transfers cancelled, claims released, kernel drivers attached
    /// again), then stops the event thread.
    public func shutdown() async {
        let open = Array(sessions.values)
        sessions = [:]
        for session in open { await session.close() }
        events.stop()
    }

    private static func key(_ device: USBDevice) -> String { "\(device.busNumber):\(device.address)" }

    private func find(id: String) throws(USBError) -> USBDevice? {
        try context.devices().first { USBDeviceInfo.id(bus: $0.busNumber, portPath: $0.portNumbers) == id }
    }

    private func session(for device: USBDevice) throws(USBError) -> DeviceSession {
        let key = Self.key(device)
        if let session = sessions[key], !session.isGone { return session }
        let handle = try device.open()
        let configurations = try (0..<device.deviceDescriptor().numConfigurations).map { index throws(USBError) in
            try device.configurationDescriptor(index: index)
        }
        let id = USBDeviceInfo.id(bus: device.busNumber, portPath: device.portNumbers)
        let session = DeviceSession(
            handle: handle, id: id, configurations: configurations,
            activeConfiguration: try? handle.activeConfiguration())
        sessions[key] = session
        logger.debug("device opened", metadata: ["usb.device": "\(id)"])
        return session
    }

    private func describe(_ device: USBDevice, cached: USBDeviceInfo?) throws(USBError) -> USBDeviceInfo {
        let descriptor = try device.deviceDescriptor()
        let configurations = try (0..<descriptor.numConfigurations).map { index throws(USBError) in
            try device.configurationDescriptor(index: index)
        }
        var info = USBDeviceInfo(
            bus: device.busNumber, address: device.address, portPath: device.portNumbers, speed: device.speed,
            descriptor: descriptor, configurations: configurations, activeConfiguration: nil, strings: [:])
        let handle: USBDeviceHandle
        do {
            handle = try session(for: device).handle
        } catch {
            logger.debug("cannot open device", metadata: ["usb.device": "\(info.id)", "error": "\(error)"])
            return info
        }
        info.activeConfiguration = try? handle.activeConfiguration()
        if let cached, cached.descriptor == descriptor {
            info.strings = cached.strings
        } else {
            info.strings = readStrings(handle, indexes: info.stringIndexes, device: info.id)
        }
        return info
    }

    private func readStrings(_ handle: USBDeviceHandle, indexes: Set<UInt8>, device: String) -> [UInt8: String] {
        guard !indexes.isEmpty else { return [:] }
        guard let language = (try? handle.stringLanguages())?.first else {
            logger.debug("device has no string languages", metadata: ["usb.device": "\(device)"])
            return [:]
        }
        var strings: [UInt8: String] = [:]
        for index in indexes {
            strings[index] = try? handle.string(index: index, language: language)
        }
        return strings
    }
}
