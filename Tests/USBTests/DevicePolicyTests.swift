import Foundation
import Testing

@testable import USB

@Suite struct DevicePolicyTests {
    /// A device with one interface of this class, subclass and protocol.
    static func device(
        vendor: UInt16 = 0x1209, product: UInt16 = 1, interface: (UInt8, UInt8, UInt8), serial: String? = "s",
        bus: UInt8 = 1, portPath: [UInt8] = [1]
    ) -> USBDeviceInfo {
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
            bus: bus, address: 2, portPath: portPath, speed: .high, descriptor: descriptor, configurations: [configuration],
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

    @Test func rulesByBusAndPortShareOnePartOfTheMachine() throws {
        let policy = DevicePolicy(rules: [try .init(parsing: "allow port=3-1"), try .init(parsing: "allow bus=4"), try .init(parsing: "deny")])
        #expect(policy.allows(Self.device(interface: (0xff, 0, 0), bus: 3, portPath: [1])))
        #expect(policy.allows(Self.device(interface: (0xff, 0, 0), bus: 3, portPath: [1, 4, 2])), "behind a hub on the port")
        #expect(!policy.allows(Self.device(interface: (0xff, 0, 0), bus: 3, portPath: [11])), "3-11 is not behind 3-1")
        #expect(!policy.allows(Self.device(interface: (0xff, 0, 0), bus: 3, portPath: [2])))
        #expect(policy.allows(Self.device(interface: (0xff, 0, 0), bus: 4, portPath: [7])))
        #expect(policy.rules.map(\.description) == ["allow port=3-1", "allow bus=4", "deny"])
    }

    @Test(arguments: [
        "permit vid=1", "allow vid", "allow vid=0x12345", "allow colour=red", "allow class=nonsense", "deny pid=-1",
        "allow bus=0", "allow bus=256", "allow port=3", "allow port=3-", "allow port=3-1.", "allow port=3-0", "allow port=a-1",
        "allow port=3-1-2", "allow port=3-1.256",
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

/// Inside a shown device, each interface is decided again.
@Suite struct InterfaceAccessTests {
    @Test func riskyInterfacesStayProtectedInsideAllowedDevices() throws {
        let policy = DevicePolicy(rules: [try .init(parsing: "allow vid=0x1209")])
        #expect(policy.access(toInterfaceClass: 0xff, subclass: 0, protocol: 0) == .open)
        #expect(policy.access(toInterfaceClass: 0x02, subclass: 0x02, protocol: 1) == .open, "a serial port")
        for (code, subclass, proto) in [(3, 1, 1), (3, 1, 2), (8, 6, 0x50), (2, 6, 0), (2, 0x0d, 0), (0xe0, 1, 1), (0x0b, 0, 0)]
            as [(UInt8, UInt8, UInt8)]
        {
            guard case .protected = policy.access(toInterfaceClass: code, subclass: subclass, protocol: proto) else {
                Issue.record("\(code)/\(subclass)/\(proto) is open")
                continue
            }
        }
        #expect(DevicePolicy(denyRiskyClasses: false).access(toInterfaceClass: 3, subclass: 1, protocol: 1) == .open)
    }

    @Test func aRuleNamingTheInterfaceClassDecides() throws {
        let policy = DevicePolicy(rules: [try .init(parsing: "allow interface_class=hid"), try .init(parsing: "deny interface_class=0xff")])
        #expect(policy.access(toInterfaceClass: 3, subclass: 1, protocol: 1) == .open)
        guard case .protected = policy.access(toInterfaceClass: 0xff, subclass: 0, protocol: 0) else {
            Issue.record("a deny rule for the class protects it")
            return
        }
    }

    /// Every key of a rule counts at the interface level too: a rule for one vendor's HID
    /// opens that vendor's HID interfaces, not every keyboard's.
    @Test func aRuleDecidesOnlyForTheDevicesItNames() throws {
        let policy = DevicePolicy(rules: [
            try .init(parsing: "allow vendor_id=0x1209,interface_class=hid"), try .init(parsing: "allow vendor_id=0x0627"),
        ])
        let ours = DevicePolicyTests.device(vendor: 0x1209, interface: (3, 1, 1))
        let keyboard = DevicePolicyTests.keyboard
        #expect(policy.allows(ours) && policy.allows(keyboard), "both shown")
        #expect(policy.access(toInterfaceClass: 3, subclass: 1, protocol: 1, of: ours) == .open)
        guard case .protected = policy.access(toInterfaceClass: 3, subclass: 1, protocol: 1, of: keyboard) else {
            Issue.record("another vendor's keyboard was opened by a rule for 0x1209")
            return
        }
        guard case .protected = policy.access(toInterfaceClass: 3, subclass: 1, protocol: 1) else {
            Issue.record("with no device known, a rule that names one decides nothing")
            return
        }
        // A hub rule for one port opens that hub only.
        let hubs = DevicePolicy(rules: [try .init(parsing: "allow port=3-1,class=hub")])
        let hub = { (port: UInt8) in DevicePolicyTests.device(interface: (9, 0, 0), bus: 3, portPath: [port]) }
        #expect(hubs.access(toInterfaceClass: 9, subclass: 0, protocol: 0, of: hub(1)) == .adminOnly)
        #expect(hubs.access(toInterfaceClass: 9, subclass: 0, protocol: 0, of: hub(2)) != .adminOnly)
    }

    @Test func hubsAreProtectedUnlessAllowedAndThenAdminOnly() throws {
        guard case .protected = DevicePolicy().access(toInterfaceClass: 9, subclass: 0, protocol: 0) else {
            Issue.record("a hub is protected by default")
            return
        }
        let allowed = DevicePolicy(rules: [try .init(parsing: "allow class=hub")])
        #expect(allowed.access(toInterfaceClass: 9, subclass: 0, protocol: 0) == .adminOnly)
        #expect(DevicePolicy.allowAll.access(toInterfaceClass: 9, subclass: 0, protocol: 0) != .open, "not even with everything shown")
    }
}

/// The daemon's share of usbfs memory.
@Suite struct UsbfsBudgetTests {
    @Test func reservationsFitTheShareOrAreRefused() throws {
        let budget = UsbfsBudget(limit: 100)
        try budget.reserve(60)
        #expect(throws: UsbfsBudget.Exhausted(wanted: 50, free: 40, limit: 100)) { try budget.reserve(50) }
        try budget.reserve(40)
        #expect(budget.inUse == 100)
        budget.release(60)
        try budget.reserve(10)
        #expect(budget.inUse == 50)
    }

    /// Issue 24, class 4: one client holds at most its share (half the daemon's by default);
    /// another client still gets memory; memory for no client counts against the daemon's only.
    @Test func eachClientHoldsAtMostItsShare() throws {
        let budget = UsbfsBudget(limit: 100)
        #expect(budget.clientLimit == 50)
        let greedy = budget.share(for: "address 10.0.0.1"), innocent = budget.share(for: "token ci")
        try greedy.reserve(30)
        #expect(throws: UsbfsBudget.Exhausted(wanted: 30, free: 20, limit: 50, client: true)) { try greedy.reserve(30) }
        try innocent.reserve(50)
        #expect(budget.inUse == 80 && budget.inUse(by: "address 10.0.0.1") == 30 && budget.inUse(by: "token ci") == 50)
        // The daemon's share binds when the clients' do not.
        #expect(throws: UsbfsBudget.Exhausted(wanted: 25, free: 20, limit: 100)) { try UsbfsShare.unattributed(budget).reserve(25) }
        #expect(throws: UsbfsBudget.Exhausted(wanted: 25, free: 20, limit: 100)) { try budget.share(for: "token third").reserve(25) }
        #expect(budget.inUse(by: "token third") == 0 && budget.inUse == 80, "a refusal takes nothing")
        greedy.release(30)
        innocent.release(50)
        #expect(budget.inUse == 0 && budget.inUse(by: "token ci") == 0)
        #expect(UsbfsBudget(limit: 100, clientLimit: 500).clientLimit == 100, "never more than the daemon's")
    }

    @Test func theDefaultIsThreeQuartersOfTheKernels() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("usbfs-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("usbfs_memory_mb")
        try "16\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(UsbfsBudget.defaultLimit(sysfs: file.path) == 12 << 20)
        try "0\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(UsbfsBudget.defaultLimit(sysfs: file.path) == 16 << 20, "0: no kernel limit; still bounded")
        #expect(UsbfsBudget.defaultLimit(sysfs: folder.appendingPathComponent("absent").path) == 16 << 20)
    }
}

/// Issue 24, class 2: security keys are told apart by their HID report descriptor.
@Suite struct SecurityKeyTests {
    /// A CTAPHID report descriptor (FIDO Alliance page, 64-byte reports in and out).
    static let fido: [UInt8] = [
        0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40,
        0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91, 0x02, 0xC0,
    ]
    /// A boot keyboard's (Generic Desktop, Keyboard/Keypad, LEDs).
    static let keyboard: [UInt8] = [
        0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01,
        0x95, 0x08, 0x81, 0x02, 0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0xC0,
    ]

    @Test func usagePagesAreReadFromEveryEncoding() {
        #expect(HIDUsagePages.pages(in: Self.fido) == [0xF1D0])
        #expect(HIDUsagePages.pages(in: Self.keyboard) == [0x01, 0x07, 0x08])
        // Four bytes, one byte, a long item skipped, a cut-short item ignored.
        #expect(HIDUsagePages.pages(in: [0x07, 0xD0, 0xF1, 0x00, 0x00]) == [0xF1D0])
        #expect(HIDUsagePages.pages(in: [0xFE, 0x02, 0x10, 0x06, 0xD0, 0x05, 0x0C]) == [0x0C], "inside a long item is data")
        #expect(HIDUsagePages.pages(in: [0x06, 0xD0]).isEmpty)
        #expect(HIDUsagePages.pages(in: []).isEmpty)
    }

    @Test func aSecurityKeyIsProtectedUnlessARuleOrTheOperatorAllowsIt() throws {
        var key = DevicePolicyTests.device(vendor: 0x1050, interface: (3, 0, 0))
        #expect(DevicePolicy().allows(key), "a HID device that is no boot device, told nothing more")
        key.securityKeyInterfaces = [0]
        #expect(!DevicePolicy().allows(key), "a security key is risky: not shown")
        guard case .protected(let why) = DevicePolicy().access(toInterfaceClass: 3, subclass: 0, protocol: 0, of: key, interface: 0) else {
            Issue.record("not protected")
            return
        }
        #expect(why.contains("security key"))
        #expect(DevicePolicy().access(toInterfaceClass: 3, subclass: 0, protocol: 0, of: key, interface: 1) == .open, "another interface")
        let allowed = DevicePolicy(rules: [try .init(parsing: "allow vendor_id=0x1050,interface_class=hid")])
        #expect(allowed.access(toInterfaceClass: 3, subclass: 0, protocol: 0, of: key, interface: 0) == .open)
        let exposed = DevicePolicy(denyRiskyClasses: false)
        #expect(exposed.allows(key) && exposed.access(toInterfaceClass: 3, subclass: 0, protocol: 0, of: key, interface: 0) == .open)
    }
}
