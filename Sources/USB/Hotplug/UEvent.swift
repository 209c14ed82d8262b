/// One kernel uevent as it comes over a NETLINK_KOBJECT_UEVENT socket:
/// "ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0…".
public struct UEvent: Sendable, Equatable {
    public var action: String
    public var devicePath: String
    public var properties: [String: String]

    /// Parses one datagram; nil for anything else (udevd's "libudev" messages, garbage).
    public init?(_ bytes: some Collection<UInt8>) {
        let fields = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let header = fields.first, let at = header.firstIndex(of: "@") else { return nil }
        action = String(header[..<at])
        devicePath = String(header[header.index(after: at)...])
        guard !action.isEmpty, devicePath.hasPrefix("/") else { return nil }
        properties = [:]
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: "=") else { continue }
            properties[String(field[..<equals])] = String(field[field.index(after: equals)...])
        }
    }

    /// An event that can change the device list: a USB device (not an interface) added,
    /// removed, or bound to the generic driver (configured and ready) or unbound; or a HID
    /// interface bound to a driver (the HID driver's report descriptor tells a security key); or
    /// a USB serial adapter's tty added or removed (a console).
    public var concernsUSBDevice: Bool {
        if properties["SUBSYSTEM"] == "tty" { return concernsUSBConsole }
        guard properties["SUBSYSTEM"] == "usb" else { return false }
        if properties["DEVTYPE"] == "usb_interface" {
            return action == "bind" && properties["INTERFACE"]?.hasPrefix("3/") == true
        }
        return properties["DEVTYPE"] == "usb_device" && ["add", "remove", "bind", "unbind", "change"].contains(action)
    }

    /// A tty made or removed by a USB interface's driver (cdc_acm, the usb-serial drivers):
    /// a console came or went. Its path runs through the interface (`…/1-1:1.0/tty/ttyACM0`).
    var concernsUSBConsole: Bool {
        ["add", "remove"].contains(action) && devicePath.split(separator: "/").contains { $0.contains(":") && $0.contains("-") }
    }
}
