import USB

/// The grammar of device ids: "usb<bus>" for a root hub, "<bus>-<port>[.<port>]…" otherwise
/// (Linux's names under /sys/bus/usb/devices, ``PortPath``). Only digits, letters, '-' and
/// '.': safe in a URL.
/// A device can also be named by its serial number: "serial:<serial number>".
enum DeviceID {
    static let serialPrefix = "serial:"

}
