/// Reads descriptors from their wire form: the device descriptor, then each configuration
/// with everything that follows it (wTotalLength bytes), the layout of Linux's sysfs
/// `descriptors` file. Groups and splits them as libusb's own parser does
/// (`libusb_get_config_descriptor`): class- and vendor-specific descriptors become the
/// `extra` bytes of the configuration, alternate setting or endpoint they follow.
public enum DescriptorParser {
    public enum Failure: Error, Equatable {
        case truncated
        case unexpected(type: UInt8)
    }

    static let device: UInt8 = 0x01, configuration: UInt8 = 0x02, interface: UInt8 = 0x04, endpoint: UInt8 = 0x05

    /// The device descriptor and every configuration in `bytes`.
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> (DeviceDescriptor, [ConfigurationDescriptor]) {
        guard bytes.count >= 18, bytes[1] == device else { throw .truncated }
        let descriptor = DeviceDescriptor(
            bcdUSB: word(bytes, 2), deviceClass: bytes[4], deviceSubClass: bytes[5], deviceProtocol: bytes[6],
            maxPacketSize0: bytes[7], vendorID: word(bytes, 8), productID: word(bytes, 10), bcdDevice: word(bytes, 12),
            manufacturerIndex: bytes[14], productIndex: bytes[15], serialNumberIndex: bytes[16],
            numConfigurations: bytes[17])
        var configurations: [ConfigurationDescriptor] = []
        var offset = Int(bytes[0])
        while configurations.count < descriptor.numConfigurations, offset + 9 <= bytes.count {
            let total = Int(word(bytes, offset + 2))
            guard total >= 9, offset + total <= bytes.count else { throw .truncated }
            configurations.append(try configurationDescriptor(Array(bytes[offset..<offset + total])))
            offset += total
        }
        return (descriptor, configurations)
    }

    /// One configuration and all that follows it.
    public static func configurationDescriptor(_ bytes: [UInt8]) throws(Failure) -> ConfigurationDescriptor {
        var reader = Reader(bytes: bytes)
        guard let head = reader.next(), head.count >= 9 else { throw .truncated }
        guard head[1] == configuration else { throw .unexpected(type: head[1]) }
        let extra = reader.extra()
        var interfaces: [Interface] = []
        for _ in 0..<head[4] {
            guard let first = reader.peek(), first.count >= 9, first[1] == interface else { break }
            var alts: [InterfaceDescriptor] = []
            while let next = reader.peek(), next.count >= 9, next[1] == interface, next[2] == first[2] {
                alts.append(try altSetting(&reader))
            }
            interfaces.append(Interface(number: first[2], altSettings: alts))
        }
        return ConfigurationDescriptor(
            value: head[5], stringIndex: head[6], attributes: head[7], maxPower: head[8],
            totalLength: word(head, 2), interfaces: interfaces, extra: extra)
    }

    private static func altSetting(_ reader: inout Reader) throws(Failure) -> InterfaceDescriptor {
        guard let head = reader.next() else { throw .truncated }
        let extra = reader.extra()
        var endpoints: [EndpointDescriptor] = []
        for _ in 0..<head[4] {
            guard let next = reader.peek(), next[1] == endpoint else { break }
            guard next.count >= 7 else { throw .truncated }
            reader.skip()
            endpoints.append(
                EndpointDescriptor(
                    address: next[2], attributes: next[3], maxPacketSize: word(next, 4), interval: next[6],
                    extra: reader.extra()))
        }
        return InterfaceDescriptor(
            number: head[2], alternateSetting: head[3], interfaceClass: head[5], interfaceSubClass: head[6],
            interfaceProtocol: head[7], stringIndex: head[8], endpoints: endpoints, extra: extra)
    }

    private static func word(_ bytes: [UInt8], _ at: Int) -> UInt16 {
        UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    /// Walks descriptors one at a time by their bLength.
    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        /// The descriptor at the cursor, nil at the end or when its bLength is impossible.
        func peek() -> [UInt8]? {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(bytes[offset])
            guard length >= 2, offset + length <= bytes.count else { return nil }
            return Array(bytes[offset..<offset + length])
        }

        mutating func skip() { if let current = peek() { offset += current.count } }

        mutating func next() -> [UInt8]? {
            guard let current = peek() else { return nil }
            offset += current.count
            return current
        }

        /// Every descriptor up to the next endpoint, interface, configuration or device
        /// descriptor, joined.
        mutating func extra() -> [UInt8] {
            var extra: [UInt8] = []
            while let current = peek(), ![endpoint, interface, configuration, device].contains(current[1]) {
                extra += current
                offset += current.count
            }
            return extra
        }
    }
}
