/// Linux's name for where a USB device is plugged (its directory under
/// /sys/bus/usb/devices): `usb<bus>` for a root hub, `<bus>-<port>[.<port>]…` for the device on
/// that chain of ports. The one parser of that grammar: the API's device ids, the policy's
/// `port=` rules and the sysfs scan all read it here, equally strictly.
///
/// Every number is what the kernel writes: 1 to 255 in decimal, no sign, no leading zero, at
/// most seven ports (a root port and six hubs' ports: more than USB's tiers allow). Anything
/// else (an interface's name such as `1-1:1.0`, `1-0`, `01-1`, `1-2..3`) is not a device.
public struct PortPath: Hashable, Sendable, CustomStringConvertible {
    public let bus: UInt8
    /// The ports from the root hub down; empty for the root hub itself.
    public let ports: [UInt8]

    public static let maxDepth = 7

    public init?(_ name: some StringProtocol) {
        if name.hasPrefix("usb") {
            guard let bus = Self.number(name.dropFirst(3)) else { return nil }
            self.bus = bus
            self.ports = []
            return
        }
        let halves = name.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2, let bus = Self.number(halves[0]) else { return nil }
        let parts = halves[1].split(separator: ".", omittingEmptySubsequences: false)
        guard (1...Self.maxDepth).contains(parts.count) else { return nil }
        var ports: [UInt8] = []
        for part in parts {
            guard let port = Self.number(part) else { return nil }
            ports.append(port)
        }
        self.bus = bus
        self.ports = ports
    }

    public var isRootHub: Bool { ports.isEmpty }

    /// The name it was read from.
    public var description: String {
        isRootHub ? "usb\(bus)" : "\(bus)-" + ports.map(String.init).joined(separator: ".")
    }

    /// 1 to 255, decimal, as the kernel writes it.
    private static func number(_ text: some StringProtocol) -> UInt8? {
        let digits = text.utf8
        guard (1...3).contains(digits.count), digits.first != UInt8(ascii: "0"),
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        return UInt8(exactly: digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) })
    }
}
