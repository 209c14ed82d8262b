import USB
import USBService

/// A fixed list of devices for testing the HTTP layer, with sessions over scripted devices
/// where a test gives them (``FakeBench``). Not a USB stack: tests that claim to test USB run
/// in the lab (LabTests).
struct FakeCatalog: DeviceCatalog {
    var list: [USBDeviceInfo]
    var failure: USBError?
    /// Ids "removed" earlier, with when.
    var removed: [String: Double] = [:]
    var readiness: (isReady: Bool, reason: String) = (true, "fake")
    /// Empty until a test appends to it (the routes that follow changes read only this).
    let changes = ChangeLog()
    /// A current list the catalog has at hand (as the host has after a netlink-followed scan).
    var fresh: (generation: Int, devices: [USBDeviceInfo])?
    /// Open sessions by id (over ``ScriptedDevice``s: ``FakeBench``); none by default.
    var sessions: [String: DeviceSession] = [:]

    func freshDevices() -> (generation: Int, devices: [USBDeviceInfo])? { fresh }

    init(list: [USBDeviceInfo], failure: USBError? = nil, removed: [String: Double] = [:]) {
        self.list = list
        self.failure = failure
        self.removed = removed
    }

    func devices() async throws -> [USBDeviceInfo] {
        if let failure { throw failure }
        return list
    }

    func device(id: String) async throws -> USBDeviceInfo? {
        try await devices().first { $0.id == id }
    }

    func rawDescriptors(id: String) async throws -> [UInt8]? {
        if let failure { throw failure }
        return list.contains { $0.id == id } ? [0x12, 0x01, 0x00, 0x02] : nil
    }

    /// The session a test gave for `id`, if the device is listed (else nil: absent).
    func session(id: String) async throws -> DeviceSession? {
        if let failure { throw failure }
        guard list.contains(where: { $0.id == id }) else { return nil }
        return sessions[id]
    }

    func removedAt(id: String) async -> Double? { removed[id] }

    /// Devices behind each hub id, with whether shown (what a reset or a port request drops).
    var behind: [String: [(id: String, shown: Bool)]] = [:]

    func devices(behind id: String, including: Bool) async -> [(id: String, shown: Bool)] { behind[id] ?? [] }

    /// The session a test gave for `id` (what a lease's end releases claims on).
    func openSession(id: String) -> DeviceSession? { sessions[id] }

    static let keyboard: USBDeviceInfo = {
        let endpoint = EndpointDescriptor(address: 0x81, attributes: 0x03, maxPacketSize: 8, interval: 7)
        let alt = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: 3, interfaceSubClass: 1, interfaceProtocol: 1,
            stringIndex: 0, endpoints: [endpoint], extra: [0x09, 0x21, 0x11, 0x01])
        let config = ConfigurationDescriptor(
            value: 1, stringIndex: 4, attributes: 0xa0, maxPower: 50, totalLength: 34,
            interfaces: [Interface(number: 0, altSettings: [alt])])
        let descriptor = DeviceDescriptor(
            bcdUSB: 0x0200, deviceClass: 0, deviceSubClass: 0, deviceProtocol: 0, maxPacketSize0: 8,
            vendorID: 0x0627, productID: 0x0001, bcdDevice: 0x0000, manufacturerIndex: 1, productIndex: 2,
            serialNumberIndex: 0, numConfigurations: 1)
        return USBDeviceInfo(
            bus: 4, address: 2, portPath: [1], speed: .full, descriptor: descriptor, configurations: [config],
            activeConfiguration: 1, strings: [1: "QEMU", 2: "QEMU USB Keyboard", 4: "HID Keyboard"])
    }()

    static let hub: USBDeviceInfo = {
        let descriptor = DeviceDescriptor(
            bcdUSB: 0x0300, deviceClass: 9, deviceSubClass: 0, deviceProtocol: 3, maxPacketSize0: 9,
            vendorID: 0x1d6b, productID: 0x0003, bcdDevice: 0x0601, manufacturerIndex: 3, productIndex: 2,
            serialNumberIndex: 1, numConfigurations: 1)
        let config = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0xe0, maxPower: 0, totalLength: 31, interfaces: [])
        return USBDeviceInfo(
            bus: 5, address: 1, portPath: [], speed: .super, descriptor: descriptor, configurations: [config],
            activeConfiguration: 1, strings: [1: "0000:00:05.0", 2: "xHCI Host Controller", 3: "Linux"])
    }()
}
