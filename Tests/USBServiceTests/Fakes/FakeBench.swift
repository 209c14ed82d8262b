import Consoles
import EventLoop
import HTTPRouting
import HTTPServer
import Logging
import USB
import USBFakes
import USBService

/// Scripted devices behind the real routes, for fast tests of the transfer and stream routes:
/// one event loop (the server's and the sessions', as in the daemon), and for each device a
/// ``ScriptedDevice`` under a real ``DeviceSession``. Not USB: the lab tests that.
final class FakeBench: Sendable {
    /// One loop for every test of the process (a thread each would be wasteful).
    static let loop: EventLoop = try! EventLoop(name: "bench-loop", logger: Logger(label: "test.loop"))

    let loop: EventLoop
    let catalog: FakeCatalog
    let devices: [String: ScriptedDevice]
    let sessions: [String: DeviceSession]
    let budget: UsbfsBudget

    /// `list`'s devices, each with a scripted device answering as `script` says.
    init(
        _ list: [USBDeviceInfo] = [FakeCatalog.vendorBoard], budget: UsbfsBudget = UsbfsBudget(limit: 16 << 20),
        controlHoldLimit: Int = 5000, script: @escaping @Sendable (ScriptedDevice.Submitted) -> ScriptedDevice.Reply = { _ in .complete() }
    ) {
        loop = Self.loop
        self.budget = budget
        var devices: [String: ScriptedDevice] = [:]
        var sessions: [String: DeviceSession] = [:]
        for info in list {
            let device = ScriptedDevice(loop: loop, script: script)
            devices[info.id] = device
            // A worker thread's epoll and eventfd: a machine without them cannot run the tests.
            sessions[info.id] = try! DeviceSession(
                io: device, id: info.id, address: info.address, configurations: info.configurations,
                activeConfiguration: info.activeConfiguration, loop: loop, budget: budget, info: info,
                controlHoldLimit: controlHoldLimit)
        }
        self.devices = devices
        self.sessions = sessions
        var catalog = FakeCatalog(list: list)
        catalog.sessions = sessions
        self.catalog = catalog
    }

    /// The only device's scripted device.
    var device: ScriptedDevice { devices.values.first! }
    var session: DeviceSession { sessions.values.first! }

    /// Sets every device's script.
    func script(_ script: @escaping @Sendable (ScriptedDevice.Submitted) -> ScriptedDevice.Reply) {
        for device in devices.values { device.script.withLock { $0 = script } }
    }

    /// The routes over these devices.
    func api(
        limits: TransferLimits = TransferLimits(), tokens: TokenFile? = nil, policy: DevicePolicy = DevicePolicy(),
        consoles: ConsoleBook? = nil
    ) -> Router {
        API.router(catalog: catalog, limits: limits, tokens: tokens, policy: policy, consoles: consoles)
    }

    /// A live server on a free loopback port, on the bench's loop.
    func server(
        limits: TransferLimits = TransferLimits(), tokens: TokenFile? = nil, policy: DevicePolicy = DevicePolicy(),
        consoles: ConsoleBook? = nil
    ) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.shutdownGrace = 0.2
        let server = HTTPServer(
            configuration: configuration, responder: api(limits: limits, tokens: tokens, policy: policy, consoles: consoles),
            logger: Logger(label: "test.http"),
            loop: loop)
        try server.start()
        return server
    }
}

extension FakeCatalog {
    /// A vendor-class board (1209:0001, "fake-board"): interface 0 with bulk IN 0x81 and bulk
    /// OUT 0x02 (512-byte packets) and interrupt IN 0x83 (64); interface 1 with isochronous OUT
    /// 0x04 and IN 0x85 (192 bytes) in alternate setting 1, none in setting 0.
    static let vendorBoard: USBDeviceInfo = {
        let bulk = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: 0xff, interfaceSubClass: 0, interfaceProtocol: 0,
            stringIndex: 0,
            endpoints: [
                EndpointDescriptor(address: 0x81, attributes: 0x02, maxPacketSize: 512, interval: 0),
                EndpointDescriptor(address: 0x02, attributes: 0x02, maxPacketSize: 512, interval: 0),
                EndpointDescriptor(address: 0x83, attributes: 0x03, maxPacketSize: 64, interval: 4),
            ])
        let isoIdle = InterfaceDescriptor(
            number: 1, alternateSetting: 0, interfaceClass: 0xff, interfaceSubClass: 1, interfaceProtocol: 0,
            stringIndex: 0, endpoints: [])
        let isoRunning = InterfaceDescriptor(
            number: 1, alternateSetting: 1, interfaceClass: 0xff, interfaceSubClass: 1, interfaceProtocol: 0,
            stringIndex: 0,
            endpoints: [
                EndpointDescriptor(address: 0x04, attributes: 0x01, maxPacketSize: 192, interval: 1),
                EndpointDescriptor(address: 0x85, attributes: 0x01, maxPacketSize: 192, interval: 1),
            ])
        let config = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 60,
            interfaces: [
                Interface(number: 0, altSettings: [bulk]), Interface(number: 1, altSettings: [isoIdle, isoRunning]),
            ])
        let descriptor = DeviceDescriptor(
            bcdUSB: 0x0200, deviceClass: 0, deviceSubClass: 0, deviceProtocol: 0, maxPacketSize0: 64,
            vendorID: 0x1209, productID: 0x0001, bcdDevice: 0x0100, manufacturerIndex: 1, productIndex: 2,
            serialNumberIndex: 3, numConfigurations: 1)
        return USBDeviceInfo(
            bus: 1, address: 5, portPath: [2], speed: .high, descriptor: descriptor, configurations: [config],
            activeConfiguration: 1, strings: [1: "usbhttpd tests", 2: "Fake board", 3: "fake-board"])
    }()
}
