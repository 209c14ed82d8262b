/// Everything known about one device at one moment: where it is, its descriptors and
/// their strings. A value, safe to hand anywhere.
public struct USBDeviceInfo: Sendable, Equatable {
    /// Stable while the device stays on the same port: "usb<bus>" for a root hub,
    /// else "<bus>-<port>.<port>…", as Linux names it in /sys/bus/usb/devices.
    public var id: String
    public var bus: UInt8
    public var address: UInt8
    public var portPath: [UInt8]
    public var speed: Speed
    public var descriptor: DeviceDescriptor
    public var configurations: [ConfigurationDescriptor]
    /// bConfigurationValue of the active configuration, nil when unconfigured or unreadable.
    public var activeConfiguration: UInt8?
    /// Decoded string descriptors by index, in the device's first language.
    public var strings: [UInt8: String]
    /// HID interfaces whose report descriptor declares the FIDO page: security keys (read from
    /// sysfs while the host's HID driver holds them; ``HIDUsagePages``).
    public var securityKeyInterfaces: Set<UInt8> = []
    /// Every HID interface's report descriptor was read (false until the HID driver has bound).
    public var securityKeysRead = true

    public init(
        bus: UInt8, address: UInt8, portPath: [UInt8], speed: Speed, descriptor: DeviceDescriptor,
        configurations: [ConfigurationDescriptor], activeConfiguration: UInt8?, strings: [UInt8: String]
    ) {
        self.id = USBDeviceInfo.id(bus: bus, portPath: portPath)
        self.bus = bus
        self.address = address
        self.portPath = portPath
        self.speed = speed
        self.descriptor = descriptor
        self.configurations = configurations
        self.activeConfiguration = activeConfiguration
        self.strings = strings
    }

    public static func id(bus: UInt8, portPath: [UInt8]) -> String {
        portPath.isEmpty ? "usb\(bus)" : "\(bus)-" + portPath.map(String.init).joined(separator: ".")
    }

    /// The string at `index`, nil for index 0 or a string that could not be read.
    public func string(_ index: UInt8) -> String? { index == 0 ? nil : strings[index] }

    public var manufacturer: String? { string(descriptor.manufacturerIndex) }
    public var product: String? { string(descriptor.productIndex) }
    public var serial: String? { string(descriptor.serialNumberIndex) }

    /// Every string index the descriptors refer to.
    var stringIndexes: Set<UInt8> {
        var indexes: Set<UInt8> = [
            descriptor.manufacturerIndex, descriptor.productIndex, descriptor.serialNumberIndex,
        ]
        for configuration in configurations {
            indexes.insert(configuration.stringIndex)
            for interface in configuration.interfaces {
                for alt in interface.altSettings { indexes.insert(alt.stringIndex) }
            }
        }
        indexes.remove(0)
        return indexes
    }
}
