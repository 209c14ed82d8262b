/// Which devices the daemon shows and lets anyone use, in the spirit of usbredir's filter
/// rules: rules tried in order, the first that matches decides; then, unless turned off, the
/// classes that are risky to expose are denied (HID boot keyboards and mice: a remote client
/// could type on the host; mass storage: a remote client could read or write the disk;
/// network and wireless adapters: the host's own connections); then everything else is
/// allowed. A denied device is invisible: not listed, no events, 404.
///
/// Inside a device that is shown, each interface is decided again (``access(toInterfaceClass:subclass:protocol:)``):
/// a risky interface inside a composite device stays protected even when a rule allows the
/// device by its vendor, unless a rule names its class (`interface_class=…`); hub interfaces
/// are protected unless a rule allows hubs, and then only for the admin scope.
public struct DevicePolicy: Sendable, Equatable {
    public struct Rule: Sendable, Equatable, CustomStringConvertible {
        public var allow: Bool
        public var vendorID: UInt16?
        public var productID: UInt16?
        /// The device's class or any interface's.
        public var classCode: UInt8?
        public var serial: String?
        /// An interface class: the rule decides about interfaces of this class (and matches
        /// devices that have one).
        public var interfaceClass: UInt8?
        /// A bus: the rule matches every device on it (its root hub too).
        public var bus: UInt8?
        /// A port ("3-1", "3-1.2"): the rule matches the device on it and every device behind it
        /// (a hub's), so that a daemon can share one hub's ports and leave the rest alone.
        public var port: String?

        public init(
            allow: Bool, vendorID: UInt16? = nil, productID: UInt16? = nil, classCode: UInt8? = nil, serial: String? = nil,
            interfaceClass: UInt8? = nil, bus: UInt8? = nil, port: String? = nil
        ) {
            self.allow = allow
            self.vendorID = vendorID
            self.productID = productID
            self.classCode = classCode
            self.serial = serial
            self.interfaceClass = interfaceClass
            self.bus = bus
            self.port = port
        }

        /// "allow|deny key=value[,key=value…]", keys vendor_id (vid), product_id (pid), class
        /// (a code or a name such as hid), serial, interface_class (a code or a name), bus (a
        /// number), port (a port path such as 3-1.2). A rule with no key matches every device.
        public init(parsing text: String) throws(PolicyError) {
            let words = text.split(separator: " ", maxSplits: 1).map(String.init)
            guard let verb = words.first, verb == "allow" || verb == "deny" else {
                throw .malformed(text, "a rule starts with allow or deny")
            }
            allow = verb == "allow"
            for pair in (words.count > 1 ? words[1] : "").split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
                guard parts.count == 2, !parts[1].isEmpty else { throw .malformed(text, "'\(pair)' is not key=value") }
                switch parts[0] {
                case "vendor_id", "vid": vendorID = try Self.word(parts[1], in: text)
                case "product_id", "pid": productID = try Self.word(parts[1], in: text)
                case "class", "interface_class":
                    guard let code = Self.number(parts[1]).flatMap(UInt8.init(exactly:)) ?? ClassCode.code(named: parts[1])
                    else { throw .malformed(text, "unknown class '\(parts[1])'") }
                    if parts[0] == "class" { classCode = code } else { interfaceClass = code }
                case "serial": serial = parts[1]
                case "bus":
                    guard let number = Self.number(parts[1]).flatMap(UInt8.init(exactly:)), number > 0 else {
                        throw .malformed(text, "'\(parts[1])' is not a bus number (1-255)")
                    }
                    bus = number
                case "port":
                    guard let path = PortPath(parts[1]), !path.isRootHub else {
                        throw .malformed(text, "'\(parts[1])' is not a port such as 3-1 or 3-1.2")
                    }
                    port = parts[1]
                default:
                    throw .malformed(
                        text, "unknown key '\(parts[0])' (vendor_id, product_id, class, serial, interface_class, bus, port)")
                }
            }
        }

        /// Whether it names the device by more than having an interface of class `code`
        /// (vendor, product, serial, bus, port, another class): it then decides only for the
        /// devices it matches.
        func namesDevice(beyond code: UInt8) -> Bool {
            vendorID != nil || productID != nil || serial != nil || bus != nil || port != nil
                || (classCode != nil && classCode != code)
        }

        func matches(_ device: USBDeviceInfo) -> Bool {
            if let vendorID, device.descriptor.vendorID != vendorID { return false }
            if let productID, device.descriptor.productID != productID { return false }
            if let serial, device.serial != serial { return false }
            if let classCode, !device.hasClass(classCode) { return false }
            if let interfaceClass, !device.hasInterfaceClass(interfaceClass) { return false }
            if let bus, device.bus != bus { return false }
            if let port, device.id != port && !device.id.hasPrefix(port + ".") { return false }
            return true
        }

        public var description: String {
            var keys: [String] = []
            if let vendorID { keys.append("vendor_id=\(hex(vendorID))") }
            if let productID { keys.append("product_id=\(hex(productID))") }
            if let classCode { keys.append("class=\(hex(classCode))") }
            if let serial { keys.append("serial=\(serial)") }
            if let interfaceClass { keys.append("interface_class=\(hex(interfaceClass))") }
            if let bus { keys.append("bus=\(bus)") }
            if let port { keys.append("port=\(port)") }
            return (allow ? "allow" : "deny") + (keys.isEmpty ? "" : " " + keys.joined(separator: ","))
        }

        /// Decimal or 0x hex.
        private static func number(_ text: String) -> Int? {
            text.lowercased().hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        }

        private static func word(_ text: String, in rule: String) throws(PolicyError) -> UInt16 {
            guard let value = number(text).flatMap(UInt16.init(exactly:)) else {
                throw .malformed(rule, "'\(text)' is not a 16-bit number")
            }
            return value
        }
    }

    public enum PolicyError: Error, Equatable, CustomStringConvertible {
        case malformed(String, String)
        public var description: String {
            switch self {
            case .malformed(let rule, let reason): "policy rule '\(rule)': \(reason)"
            }
        }
    }

    public var rules: [Rule]
    public var denyRiskyClasses: Bool

    public init(rules: [Rule] = [], denyRiskyClasses: Bool = true) {
        self.rules = rules
        self.denyRiskyClasses = denyRiskyClasses
    }

    /// Everything visible: for tests and tools.
    public static let allowAll = DevicePolicy(rules: [], denyRiskyClasses: false)

    public func allows(_ device: USBDeviceInfo) -> Bool {
        if let rule = rules.first(where: { $0.matches(device) }) { return rule.allow }
        return !(denyRiskyClasses && Self.isRisky(device))
    }

    /// A device with a risky interface (``riskyInterface(class:subclass:protocol:)``), or of
    /// mass storage class itself.
    public static func isRisky(_ device: USBDeviceInfo) -> Bool {
        if device.descriptor.deviceClass == 0x08 || !device.securityKeyInterfaces.isEmpty { return true }
        let alts = device.configurations.flatMap(\.interfaces).flatMap(\.altSettings)
        return alts.contains { riskyInterface(class: $0.interfaceClass, subclass: $0.interfaceSubClass, protocol: $0.interfaceProtocol) != nil }
    }

    /// What a remote client could do with an interface of this kind that it must not do by
    /// default, or nil for the harmless ones: a HID boot keyboard or mouse (3/1/1-2: type on
    /// the host, read its keys), mass storage (8: its disks), a network adapter (CDC ECM, EEM,
    /// NCM, MBIM; RNDIS: its connections), a wireless controller (0xe0: Bluetooth), a smart-card
    /// reader (CCID, 0x0b: the card's keys, and the PIN typed for it); and a HID security key
    /// (FIDO/U2F, told by its report descriptor: ``USBDeviceInfo/securityKeyInterfaces``). Serial ports (CDC ACM),
    /// vendor interfaces, audio and video (the things benches test) are not risky.
    public static func riskyInterface(class code: UInt8, subclass: UInt8, protocol: UInt8) -> String? {
        switch (code, subclass, `protocol`) {
        case (0x03, 1, 1), (0x03, 1, 2): "a HID boot keyboard or mouse"
        case (0x08, _, _): "mass storage"
        case (0x02, 0x06, _), (0x02, 0x0c, _), (0x02, 0x0d, _), (0x02, 0x0e, _), (0x02, 0x02, 0xff), (0xef, 0x04, 0x01):
            "a network adapter"
        case (0xe0, _, _): "a wireless controller"
        case (0x0b, _, _): "a smart-card reader"
        default: nil
        }
    }

    /// Who may use an interface of a shown device.
    public enum InterfaceAccess: Sendable, Equatable {
        case open
        /// Only with the admin scope (a hub, allowed by a rule).
        case adminOnly
        /// Nobody: why.
        case protected(String)
    }

    /// Who may use an interface of class `code`/`subclass`/`protocol` of `device`: a rule that
    /// names the interface class decides (the first that matches the device by every other key
    /// it has: `allow vendor_id=V,interface_class=hid` opens V's HID interfaces, no one else's);
    /// else a hub is protected (allowed for the admin scope by an allow rule for the hub class
    /// that matches it), and a risky interface is protected unless risky classes are exposed.
    /// Without `device`, a rule that names a device by more than its class decides nothing.
    public func access(
        toInterfaceClass code: UInt8, subclass: UInt8, protocol: UInt8, of device: USBDeviceInfo? = nil,
        interface: UInt8? = nil
    ) -> InterfaceAccess {
        let applies = { (rule: Rule) in device.map(rule.matches) ?? !rule.namesDevice(beyond: code) }
        if let rule = rules.first(where: { $0.interfaceClass == code && applies($0) }) {
            guard rule.allow else { return .protected("a rule denies interface class \(hex(code))") }
            return code == 0x09 ? .adminOnly : .open
        }
        if code == 0x09 {
            let allowed = rules.contains { $0.allow && ($0.classCode == 0x09 || $0.interfaceClass == 0x09) && applies($0) }
            return allowed ? .adminOnly : .protected("a hub: its ports carry other devices (allow class=hub to reach it, with the admin scope)")
        }
        if denyRiskyClasses, code == 0x03, let interface, device?.securityKeyInterfaces.contains(interface) == true {
            return .protected(
                "a security key (FIDO/U2F: its credentials, and the touch that approves a login) (allow interface_class=hid or --expose-risky-devices to reach it)")
        }
        if denyRiskyClasses, let risk = Self.riskyInterface(class: code, subclass: subclass, protocol: `protocol`) {
            return .protected("\(risk) (allow interface_class=\(hex(code)) or --expose-risky-devices to reach it)")
        }
        return .open
    }
}

extension USBDeviceInfo {
    /// The device's class is `code`, or any interface of any configuration has it.
    public func hasClass(_ code: UInt8) -> Bool {
        descriptor.deviceClass == code || hasInterfaceClass(code)
    }

    /// Any interface of any configuration has class `code`.
    public func hasInterfaceClass(_ code: UInt8) -> Bool {
        configurations.lazy.flatMap(\.interfaces).flatMap(\.altSettings).contains { $0.interfaceClass == code }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
