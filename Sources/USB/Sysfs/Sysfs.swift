import Glibc

/// Linux's sysfs view of USB (`/sys/bus/usb/devices`): the kernel's own copy of every
/// device's descriptors and strings, read without opening (or waking) the device.
public enum Sysfs {
    public static let devices = "/sys/bus/usb/devices"

    /// The current alternate setting of an interface
    /// (`<id>:<configuration>.<interface>/bAlternateSetting`), nil if unreadable.
    static func altSetting(device id: String, configuration: UInt8, interface: UInt8) -> UInt8? {
        attribute("\(devices)/\(id):\(configuration).\(interface)/bAlternateSetting").flatMap { UInt8($0) }
    }

    /// The name of the kernel driver bound to an interface (the last part of
    /// `<id>:<configuration>.<interface>/driver`, a symbolic link), nil if none is bound.
    public static func interfaceDriver(device id: String, configuration: UInt8, interface: UInt8) -> String? {
        linkName("\(devices)/\(id):\(configuration).\(interface)/driver")
    }

    /// The kernel driver bound to each interface of `configuration`, the active one, by
    /// interface number (interfaces without a driver are left out).
    public static func interfaceDrivers(device id: String, configuration: ConfigurationDescriptor) -> [UInt8: String] {
        var drivers: [UInt8: String] = [:]
        for interface in configuration.interfaces {
            drivers[interface.number] = interfaceDriver(device: id, configuration: configuration.value, interface: interface.number)
        }
        return drivers
    }

    /// The last path component of symbolic link `path` (readlink), nil if it is not one.
    public static func linkName(_ path: String) -> String? {
        var target = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &target, target.count - 1)
        guard count > 0 else { return nil }
        let text = String(decoding: target.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.map(String.init)
    }

    /// A text attribute without its trailing newline, nil if absent or unreadable.
    static func attribute(_ path: String) -> String? {
        guard let bytes = contents(path, limit: 4096) else { return nil }
        var text = Substring(decoding: bytes, as: UTF8.self)
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }

    /// The whole file (at most `limit` bytes), nil if it cannot be opened.
    static func contents(_ path: String, limit: Int = 65_536) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? bytes : nil }
            bytes += chunk.prefix(count)
        }
        return bytes
    }

    /// The names in a directory, without "." and ".."; none when it does not exist, nil when it
    /// cannot be read (descriptors running out, say): not the same as empty.
    public static func entries(_ path: String) -> [String]? {
        guard let directory = opendir(path) else { return errno == ENOENT ? [] : nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Whether `path` exists (a symbolic link counts even when it dangles).
    public static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }
}
