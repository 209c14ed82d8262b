import Testing

@testable import USB

@Suite struct DevicePolicyTests {
    /// A device with one interface of this class, subclass and protocol.
    static func device(vendor: UInt16 = 0x1209, product: UInt16 = 1, interface: (UInt8, UInt8, UInt8), serial: String? = "s")
        -> USBDeviceInfo
    {
        let alt = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: interface.0, interfaceSubClass: interface.1,
            interfaceProtocol: interface.2, stringIndex: 0, endpoints: [])
        let configuration = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 18,
            interfaces: [Interface(number: 0, altSettings: [alt])])
        let descriptor = DeviceDescriptor(
            bcdUSB: 0x200, deviceClass: 0, deviceSubClass: 0, deviceProtocol: 0, maxPacketSize0: 64, vendorID: vendor,
            productID: product, bcdDevice: 1, manufacturerIndex: 0, productIndex: 0,
            serialNumberIndex: serial == nil ? 0 : 3, numConfigurations: 1)
        return USBDeviceInfo(
            bus: 1, address: 2, portPath: [1], speed: .high, descriptor: descriptor, configurations: [configuration],
            activeConfiguration: 1, strings: serial.map { [3: $0] } ?? [:])
    }

    static let keyboard = device(vendor: 0x0627, interface: (3, 1, 1))
    static let mouse = device(vendor: 0x0627, product: 2, interface: (3, 1, 2))
    static let gamepad = device(interface: (3, 0, 0))
    static let stick = device(vendor: 0x46f4, interface: (8, 6, 0x50))
    static let gadget = device(interface: (0xff, 0, 0), serial: "lab-ffs")

    @Test func riskyClassesAreDeniedByDefault() {
        let policy = DevicePolicy()
        #expect(!policy.allows(Self.keyboard) && !policy.allows(Self.mouse) && !policy.allows(Self.stick))
        #expect(policy.allows(Self.gamepad) && policy.allows(Self.gadget))
        #expect(DevicePolicy(denyRiskyClasses: false).allows(Self.stick))
    }

    @Test func theFirstMatchingRuleDecides() throws {
        let policy = DevicePolicy(rules: [
            try .init(parsing: "allow vid=0x0627,pid=1"),
            try .init(parsing: "deny serial=lab-ffs"),
            try .init(parsing: "deny class=hid"),
            try .init(parsing: "allow class=vendor_specific"),
            try .init(parsing: "deny"),
        ])
        #expect(policy.allows(Self.keyboard), "an allow rule overrides the risky default")
        #expect(!policy.allows(Self.mouse) && !policy.allows(Self.gamepad))
        #expect(!policy.allows(Self.gadget), "deny serial comes before allow class")
        #expect(policy.allows(Self.device(interface: (0xff, 0, 0), serial: "other")))
        #expect(!policy.allows(Self.stick), "deny matches everything left")
        #expect(policy.rules.map(\.description)[0] == "allow vendor_id=0x0627,product_id=0x0001")
    }

    @Test(arguments: [
        "permit vid=1", "allow vid", "allow vid=0x12345", "allow colour=red", "allow class=nonsense", "deny pid=-1",
    ])
    func badRules(text: String) {
        #expect(throws: DevicePolicy.PolicyError.self) { try DevicePolicy.Rule(parsing: text) }
    }

    @Test func deniedDevicesNeverJoinTheRoster() throws {
        var roster = DeviceRoster(policy: DevicePolicy(rules: [try .init(parsing: "deny serial=s-1-1")]))
        let changes = roster.update([HotplugTests.sysfs("1-1", address: 2), HotplugTests.sysfs("1-2", address: 3)])
        #expect(changes.map(\.summary) == ["added 1-2"])
        let fine = roster.update(id: "1-1", HotplugTests.sysfs("1-1", address: 2))
        #expect(fine, "a denied device needs no rescan: it stays absent")
    }
}
