import USB

/// Finds a device's consoles in sysfs: each interface of it whose driver made a tty, whether
/// the tty hangs under the interface's `tty/` folder (cdc_acm: `1-1:1.0/tty/ttyACM0`) or has a
/// folder of its own there (the usb-serial drivers: `1-1:1.0/ttyUSB0/tty/ttyUSB0`). The tty's
/// name is sysfs's, checked to be a plain `tty<letters><digits>`: /dev holds nothing else a
/// client could reach through it.
public enum ConsoleFinder {
    /// Every console of the devices `ids` (port paths), by device and interface.
    public static func consoles(devices ids: Set<String>, root: String = "/sys/bus/usb/devices") -> [ConsoleInfo] {
        var found: [ConsoleInfo] = []
        for name in (Sysfs.entries(root) ?? []).sorted() {
            guard let colon = name.firstIndex(of: ":"), case let id = String(name[..<colon]), ids.contains(id),
                let interface = interfaceNumber(name, device: id)
            else { continue }
            let directory = root + "/" + name
            var ttys = (Sysfs.entries(directory + "/tty") ?? []).filter(isTTYName)
            ttys += (Sysfs.entries(directory) ?? []).filter { isTTYName($0) && Sysfs.exists(directory + "/" + $0 + "/tty") }
            let driver = Sysfs.linkName(directory + "/driver") ?? ""
            for tty in ttys.sorted() {
                found.append(ConsoleInfo(device: id, interface: interface, tty: tty, driver: driver))
            }
        }
        return found
    }

    /// The interface number of `<id>:<configuration>.<interface>`.
    static func interfaceNumber(_ name: String, device id: String) -> UInt8? {
        let rest = name.dropFirst(id.count + 1)
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, UInt8(parts[0]) != nil else { return nil }
        return UInt8(parts[1])
    }

    /// `tty` followed by letters, then digits (ttyACM0, ttyUSB12), 32 characters at most.
    static func isTTYName(_ name: String) -> Bool {
        guard name.hasPrefix("tty"), name.utf8.count <= 32 else { return false }
        let rest = name.utf8.dropFirst(3)
        let letters = rest.prefix { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }
        let digits = rest.dropFirst(letters.count)
        return !letters.isEmpty && !digits.isEmpty && digits.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }
}
