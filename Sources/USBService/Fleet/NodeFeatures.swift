import USB

/// The Node Feature Discovery labels that say which USB devices a node's daemon serves, so
/// that the cluster can place a job beside the device it needs (a node affinity on a label).
///
/// Written as NFD's local feature file (``text(node:expiry:)``): one `name=value` per line,
/// names without a namespace, which NFD puts under `feature.node.kubernetes.io/`. Every name
/// and value stays within Kubernetes' label rules whatever a device reports: a name part is at
/// most 63 characters of `[A-Za-z0-9._-]`, starting and ending with a letter or digit.
///
/// - `usbhttpd.devices=N`: how many devices the daemon shows (its policy's view, root hubs left out).
/// - `usbhttpd.usb-VVVV-PPPP=N`: N devices with this vendor and product id (lowercase hex).
/// - `usbhttpd.serial-SERIAL=true`: a device with this serial number, when serials are labelled.
///   A serial that is not all `[A-Za-z0-9._-]`, that ends with `.`, `_` or `-`, or that is longer
///   than 47 characters is written as its first characters made safe, `-`, and 8 hex digits of
///   its FNV-1a hash (``serialLabel(_:)``): distinct serials keep distinct names.
public struct NodeFeatures: Sendable, Equatable {
    /// Label name → value, without namespace.
    public private(set) var labels: [String: String]
    /// Serial labels were asked for but left out: with them the file would pass `limit`.
    public private(set) var serialsLeftOut = false

    /// NFD reads feature files of at most 64 KiB; a little is kept for the comment lines.
    public static let fileLimit = 65_536 - 512

    /// The labels for these devices (as the daemon's policy shows them); serial labels when
    /// `serials`, unless the file would pass `limit` bytes with them (some hundreds of
    /// devices with long serials): then without, and ``serialsLeftOut``.
    public init(devices: [USBDeviceInfo], serials: Bool, limit: Int = NodeFeatures.fileLimit) {
        self.init(counting: devices, serials: serials)
        if serials, labels.reduce(0, { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }) > limit {
            self.init(counting: devices, serials: false)
            serialsLeftOut = true
        }
    }

    private init(counting devices: [USBDeviceInfo], serials: Bool) {
        var labels: [String: String] = [:]
        var counts: [String: Int] = [:]
        var shown = 0
        for device in devices where !device.id.hasPrefix("usb") {
            shown += 1
            counts[Self.productLabel(vendor: device.descriptor.vendorID, product: device.descriptor.productID), default: 0] += 1
            if serials, let serial = device.serial, !serial.isEmpty { labels[Self.serialLabel(serial)] = "true" }
        }
        for (name, count) in counts { labels[name] = String(count) }
        labels["usbhttpd.devices"] = String(shown)
        self.labels = labels
    }

    public static func productLabel(vendor: UInt16, product: UInt16) -> String {
        // hex() writes USB ids as 0x and four lowercase digits; the label takes the digits.
        "usbhttpd.usb-\(hex(vendor).dropFirst(2))-\(hex(product).dropFirst(2))"
    }

    /// `usbhttpd.serial-` and the serial, made a valid label name (see the type's comment).
    public static func serialLabel(_ serial: String) -> String {
        let prefix = "usbhttpd.serial-"
        let room = 63 - prefix.utf8.count
        let bytes = Array(serial.utf8)
        let safe = bytes.allSatisfy(isLabelByte)
        if safe, bytes.count <= room, let last = bytes.last, isAlphanumeric(last) {
            return prefix + serial
        }
        // Made safe and shortened: the hash keeps two serials that differ only in what was
        // replaced or cut apart.
        let kept = bytes.prefix(room - 9).map { isLabelByte($0) ? $0 : UInt8(ascii: "_") }
        return prefix + String(decoding: kept, as: UTF8.self) + "-" + hex8(fnv1a(bytes))
    }

    /// The feature file: a comment saying who wrote it, the expiry NFD honours (`# +expiry-time=`,
    /// RFC 3339, as NFD's local source parses it; so that a
    /// daemon that died without removing its file does not keep labels for ever), the labels
    /// in name order.
    public func text(node: String?, expiry: String) -> String {
        var lines = [
            "# The USB devices usbhttpd serves\(node.map { " on \($0)" } ?? ""), rewritten on every arrival and removal.",
            "# +expiry-time=\(expiry)",
        ]
        if serialsLeftOut { lines.append("# Serial labels left out: with them this file would pass NFD's 64 KiB.") }
        for name in labels.keys.sorted() { lines.append("\(name)=\(labels[name]!)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func isLabelByte(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt32 {
        bytes.reduce(2_166_136_261 as UInt32) { hash, byte in (hash ^ UInt32(byte)) &* 16_777_619 }
    }

    private static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
