import Foundation

/// `lsusb -v` output, parsed into what the API must agree with. Class-specific
/// descriptors, qualifiers, hub and BOS descriptors are skipped; within each known
/// section the first value of a key wins.
struct Lsusb {
    struct Interface {
        var fields: [String: String] = [:]
        var endpoints: [[String: String]] = []
    }

    struct Configuration {
        var fields: [String: String] = [:]
        var interfaces: [Interface] = []
    }

    struct Device {
        var bus: Int
        var address: Int
        var fields: [String: String] = [:]
        var configurations: [Configuration] = []
    }

    var devices: [Device] = []

    init(parsing text: String) {
        enum Section { case device, configuration, interface, endpoint, other }
        var section = Section.other
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(rawLine)
            if line.hasPrefix("Bus ") {
                // "Bus 003 Device 002: ID 1209:0003 …"
                let words = line.split(separator: " ")
                if words.count > 3, let bus = Int(words[1]), let address = Int(words[3].dropLast()) {
                    devices.append(Device(bus: bus, address: address))
                }
                section = .other
                continue
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if !line.hasPrefix(" ") || trimmed.hasSuffix(":") {
                switch trimmed {
                case "Device Descriptor:": section = .device
                case "Configuration Descriptor:":
                    section = .configuration
                    devices[devices.count - 1].configurations.append(Configuration())
                case "Interface Descriptor:":
                    section = .interface
                    let d = devices.count - 1
                    devices[d].configurations[devices[d].configurations.count - 1].interfaces.append(Interface())
                case "Endpoint Descriptor:":
                    section = .endpoint
                    let d = devices.count - 1
                    let c = devices[d].configurations.count - 1
                    let i = devices[d].configurations[c].interfaces.count - 1
                    devices[d].configurations[c].interfaces[i].endpoints.append([:])
                default: section = .other
                }
                continue
            }
            guard let (key, value) = Self.keyValue(trimmed), !devices.isEmpty else { continue }
            let d = devices.count - 1
            switch section {
            case .device:
                if devices[d].fields[key] == nil { devices[d].fields[key] = value }
            case .configuration:
                let c = devices[d].configurations.count - 1
                if devices[d].configurations[c].fields[key] == nil { devices[d].configurations[c].fields[key] = value }
            case .interface:
                let c = devices[d].configurations.count - 1
                let i = devices[d].configurations[c].interfaces.count - 1
                if devices[d].configurations[c].interfaces[i].fields[key] == nil {
                    devices[d].configurations[c].interfaces[i].fields[key] = value
                }
            case .endpoint:
                let c = devices[d].configurations.count - 1
                let i = devices[d].configurations[c].interfaces.count - 1
                let e = devices[d].configurations[c].interfaces[i].endpoints.count - 1
                if devices[d].configurations[c].interfaces[i].endpoints[e][key] == nil {
                    devices[d].configurations[c].interfaces[i].endpoints[e][key] = value
                }
            case .other: break
            }
        }
    }

    /// "bcdUSB               2.00" -> ("bcdUSB", "2.00"); keys may hold single spaces
    /// ("Transfer Type"); key and value are separated by two or more.
    static func keyValue(_ line: String) -> (String, String)? {
        guard let first = line.first, first.isLetter else { return nil }
        guard let gap = line.range(of: "  ") else { return nil }
        let key = String(line[..<gap.lowerBound])
        let value = line[gap.upperBound...].trimmingCharacters(in: .whitespaces)
        return (key, value)
    }
}

extension Lsusb {
    /// "0x1209" or "0x0200  1x 512 bytes" -> 0x1209 / 0x200; "120mA" -> 120; "3" -> 3.
    static func number(_ value: String?) -> Int? {
        guard let first = value?.split(separator: " ").first else { return nil }
        var text = String(first)
        if text.hasSuffix("mA") { text.removeLast(2) }
        if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) }
        return Int(text)
    }

    /// "1 usbhttpd lab" -> (1, "usbhttpd lab"); "0" -> (0, nil).
    static func indexedString(_ value: String?) -> (Int, String?)? {
        guard let value else { return nil }
        let space = value.firstIndex(of: " ") ?? value.endIndex
        guard let index = Int(value[..<space]) else { return nil }
        let text = value[space...].trimmingCharacters(in: .whitespaces)
        return (index, index == 0 ? nil : text)
    }
}
