import Glibc

/// The few facts read from Linux's sysfs that libusb does not offer.
enum Sysfs {
    /// The current alternate setting of an interface
    /// (`/sys/bus/usb/devices/<id>:<configuration>.<interface>/bAlternateSetting`), nil if unreadable.
    static func altSetting(device id: String, configuration: UInt8, interface: UInt8) -> UInt8? {
        read("/sys/bus/usb/devices/\(id):\(configuration).\(interface)/bAlternateSetting")
            .flatMap { UInt8($0.trimmingSpaces()) }
    }

    private static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var result = Substring(self)
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}
