/// The grammar of device ids: "usb<bus>" for a root hub, "<bus>-<port>[.<port>]…" otherwise
/// (Linux's names under /sys/bus/usb/devices). Only digits, letters, '-' and '.': safe in a URL.
/// A device can also be named by its serial number: "serial:<serial number>".
enum DeviceID {
    static let serialPrefix = "serial:"

    static func isWellFormed(_ id: String) -> Bool {
        func number(_ text: Substring) -> Bool {
            (1...3).contains(text.count) && text.allSatisfy { $0.isASCII && $0.isNumber }
        }
        if id.hasPrefix("usb") { return number(id.dropFirst(3)) }
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, number(parts[0]) else { return false }
        let ports = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return (1...7).contains(ports.count) && ports.allSatisfy(number)
    }
}
