/// One USB device as sysfs shows it (`/sys/bus/usb/devices/<name>`): where it is, its
/// descriptors as the kernel read them at enumeration, and the three strings the kernel
/// keeps. Reading one opens no device file and sends nothing on the bus.
struct SysfsDevice: Sendable, Equatable {
    /// The kernel's name: "usb<bus>" for a root hub, else "<bus>-<port>.<port>…".
    var name: String
    var bus: UInt8
    var address: UInt8
    var portPath: [UInt8]
    var speed: Speed
    /// The `descriptors` file: the device descriptor, then each configuration in full.
    var rawDescriptors: [UInt8]
    /// bConfigurationValue, nil when unconfigured.
    var activeConfiguration: UInt8?
    var manufacturer: String?
    var product: String?
    var serial: String?
    /// The generic USB driver is bound: the kernel has chosen a configuration and created
    /// the interfaces, so the device is ready to use.
    var isBound: Bool
    /// HID interfaces that are security keys (``Sysfs/securityKeyInterfaces(device:root:)``),
    /// and whether every HID interface could be read yet (if not, each scan reads again).
    var securityKeyInterfaces: Set<UInt8> = []
    var securityKeysRead = true

    /// The usbfs node that opens the device.
    var nodePath: String {
        "/dev/bus/usb/" + threeDigits(bus) + "/" + threeDigits(address)
    }
}

extension SysfsDevice {
    /// Reads device `name` under `root`; nil when it is not a device (an interface, a
    /// port), went away while being read, or is being reset (``address(in:)``).
    init?(name: String, root: String = Sysfs.devices) {
        guard let portPath = PortPath(name)?.ports else { return nil }
        let directory = root + "/" + name
        guard let bus = Sysfs.attribute(directory + "/busnum").flatMap({ UInt8($0) }),
            case .assigned(let address) = Self.address(in: directory),
            let raw = Sysfs.contents(directory + "/descriptors"), raw.count >= 18
        else { return nil }
        self.name = name
        self.bus = bus
        self.address = address
        self.portPath = portPath
        self.speed = Self.speed(Sysfs.attribute(directory + "/speed"))
        self.rawDescriptors = raw
        self.activeConfiguration = Sysfs.attribute(directory + "/bConfigurationValue").flatMap { UInt8($0) }
            .flatMap { $0 == 0 ? nil : $0 }
        self.manufacturer = Sysfs.attribute(directory + "/manufacturer")
        self.product = Sysfs.attribute(directory + "/product")
        self.serial = Sysfs.attribute(directory + "/serial")
        self.isBound = Sysfs.exists(directory + "/driver")
        (securityKeyInterfaces, securityKeysRead) = Sysfs.securityKeyInterfaces(device: name, root: root)
    }

    /// Every device under `root`. A device in `known` with the same address is the same
    /// device (a replugged or re-enumerated one gets a new address): only what may change
    /// while it stays plugged (its configuration, its driver) is read again.
    ///
    /// Nil when the folder cannot be read at all, and a known device whose files cannot be read
    /// while its folder is still there is kept as it was: a transient failure (descriptors
    /// running out) must not look like every device leaving.
    static func scan(root: String = Sysfs.devices, known: [String: SysfsDevice] = [:]) -> [SysfsDevice]? {
        guard let names = Sysfs.entries(root) else { return nil }
        return names.compactMap { name in
            let directory = root + "/" + name
            if var device = known[name] {
                switch Self.address(in: directory) {
                case .assigned(device.address):
                    device.activeConfiguration = Sysfs.attribute(directory + "/bConfigurationValue")
                        .flatMap { UInt8($0) }.flatMap { $0 == 0 ? nil : $0 }
                    device.isBound = Sysfs.exists(directory + "/driver")
                    if !device.securityKeysRead {
                        // The HID driver binds after the device: read until it has.
                        (device.securityKeyInterfaces, device.securityKeysRead) = Sysfs.securityKeyInterfaces(device: name, root: root)
                    }
                    return device
                case .resetting:
                    // A reset keeps the device and, when it ends, its address.
                    return device
                case .unreadable where Sysfs.exists(directory):
                    return device
                default:
                    break
                }
            }
            if let device = SysfsDevice(name: name, root: root) { return device }
            if let old = known[name], Sysfs.exists(directory) { return old }
            return nil
        }
    }

    /// What a device's `devnum` says.
    enum Address: Equatable {
        case assigned(UInt8)
        /// 0: the kernel clears a device's address while its port resets (hub.c,
        /// `hub_port_finish_reset`) and gives the same one back when the device answers
        /// again; meanwhile it has no usbfs node (`/dev/bus/usb/001/000` is none).
        case resetting
        case unreadable
    }

    static func address(in directory: String) -> Address {
        switch Sysfs.attribute(directory + "/devnum").flatMap({ UInt8($0) }) {
        case nil: .unreadable
        case 0: .resetting
        case let address?: .assigned(address)
        }
    }

    /// The `speed` attribute (Mbit/s: "1.5", "12", "480", "5000", "10000", "20000").
    static func speed(_ text: String?) -> Speed {
        switch text {
        case "1.5": .low
        case "12": .full
        case "480": .high
        case "5000": .super
        case "10000", "20000": .superPlus
        default: .unknown
        }
    }
}

private func threeDigits(_ value: UInt8) -> String {
    let digits = String(value)
    return String(repeating: "0", count: 3 - digits.count) + digits
}
