/// Which devices the daemon shows and lets anyone use, in the spirit of usbredir's filter
/// rules: rules tried in order, the first that matches decides; then, unless turned off, the
/// classes that are risky to expose are denied (HID boot keyboards and mice: a remote client
/// could type on the host; mass storage: a remote client could read or write the disk);
/// then everything else is allowed. A denied device is invisible: not listed, no events, 404.
public struct DevicePolicy: Sendable, Equatable {
    public struct Rule: Sendable, Equatable, CustomStringConvertible {
        public var allow: Bool
        public var vendorID: UInt16?
        public var productID: UInt16?
        /// The device's class or any interface's.
        public var classCode: UInt8?
        public var serial: String?

        public init(allow: Bool, vendorID: UInt16? = nil, productID: UInt16? = nil, classCode: UInt8? = nil, serial: String? = nil) {
            self.allow = allow
            self.vendorID = vendorID
            self.productID = productID
            self.classCode = classCode
            self.serial = serial
        }

        /// "allow|deny key=value[,key=value…]", keys vendor_id (vid), product_id (pid), class
        /// (a code or a name such as hid), serial. A rule with no key matches every device.
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
                case "class":
                    guard let code = Self.number(parts[1]).flatMap(UInt8.init(exactly:)) ?? ClassCode.code(named: parts[1])
                    else { throw .malformed(text, "unknown class '\(parts[1])'") }
                    classCode = code
                case "serial": serial = parts[1]
                default: throw .malformed(text, "unknown key '\(parts[0])' (vendor_id, product_id, class, serial)")
                }
            }
        }

        func matches(_ device: USBDeviceInfo) -> Bool {
            if let vendorID, device.descriptor.vendorID != vendorID { return false }
            if let productID, device.descriptor.productID != productID { return false }
            if let serial, device.serial != serial { return false }
            if let classCode, !device.hasClass(classCode) { return false }
            return true
        }

        public var description: String {
            var keys: [String] = []
            if let vendorID { keys.append("vendor_id=\(hex(vendorID))") }
            if let productID { keys.append("product_id=\(hex(productID))") }
            if let classCode { keys.append("class=\(hex(classCode))") }
            if let serial { keys.append("serial=\(serial)") }
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

    /// A HID boot keyboard or mouse (class 3, subclass 1, protocol 1 or 2), or mass storage
    /// (class 8), as the device or any interface.
    public static func isRisky(_ device: USBDeviceInfo) -> Bool {
        if device.hasClass(0x08) { return true }
        let alts = device.configurations.flatMap(\.interfaces).flatMap(\.altSettings)
        return alts.contains { $0.interfaceClass == 0x03 && $0.interfaceSubClass == 1 && [1, 2].contains($0.interfaceProtocol) }
    }
}

extension USBDeviceInfo {
    /// The device's class is `code`, or any interface of any configuration has it.
    public func hasClass(_ code: UInt8) -> Bool {
        descriptor.deviceClass == code
            || configurations.lazy.flatMap(\.interfaces).flatMap(\.altSettings).contains { $0.interfaceClass == code }
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
