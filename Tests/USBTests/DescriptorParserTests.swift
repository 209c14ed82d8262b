import Testing

@testable import USB

/// Descriptors read from their wire form (sysfs `descriptors`), grouped as libusb groups them.
@Suite struct DescriptorParserTests {
    static let device: [UInt8] = [
        18, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 64, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01, 1, 2, 3, 1,
    ]

    static func configuration(value: UInt8, interfaces: UInt8, _ body: [UInt8]) -> [UInt8] {
        let total = 9 + body.count
        return [9, 0x02, UInt8(total & 0xff), UInt8(total >> 8), interfaces, value, 4, 0x80, 50] + body
    }

    static func interface(_ number: UInt8, alt: UInt8, endpoints: UInt8, class: UInt8 = 0xff) -> [UInt8] {
        [9, 0x04, number, alt, endpoints, `class`, 0, 0, 0]
    }

    static func endpoint(_ address: UInt8, attributes: UInt8, size: UInt16, interval: UInt8 = 0) -> [UInt8] {
        [7, 0x05, address, attributes, UInt8(size & 0xff), UInt8(size >> 8), interval]
    }

    @Test func aKeyboardItsClassDescriptorBelongsToItsInterface() throws {
        let hid: [UInt8] = [9, 0x21, 0x11, 0x01, 0, 1, 0x22, 63, 0]
        let bytes =
            Self.device
            + Self.configuration(
                value: 1, interfaces: 1,
                Self.interface(0, alt: 0, endpoints: 1, class: 3) + hid + Self.endpoint(0x81, attributes: 3, size: 8, interval: 7))
        let (device, configurations) = try DescriptorParser.parse(bytes)
        #expect(device.vendorID == 0x1209 && device.productID == 0x0001 && device.bcdUSB == 0x0200)
        #expect(device.manufacturerIndex == 1 && device.productIndex == 2 && device.serialNumberIndex == 3)
        #expect(configurations.count == 1)
        let configuration = try #require(configurations.first)
        #expect(configuration.value == 1 && configuration.maxPower == 50 && configuration.totalLength == 34)
        #expect(configuration.extra.isEmpty)
        let alt = try #require(configuration.interfaces.first?.altSettings.first)
        #expect(alt.interfaceClass == 3 && alt.extra == hid)
        #expect(alt.endpoints == [EndpointDescriptor(address: 0x81, attributes: 3, maxPacketSize: 8, interval: 7)])
    }

    @Test func associationsAndAlternateSettingsAsLibusbGroupsThem() throws {
        let association: [UInt8] = [8, 0x0b, 0, 2, 1, 0, 0, 0]
        let secondAssociation: [UInt8] = [8, 0x0b, 2, 1, 0xff, 0, 0, 0]
        let companion: [UInt8] = [6, 0x30, 15, 0, 0, 0]
        let body =
            association + Self.interface(0, alt: 0, endpoints: 0, class: 1)
            + Self.interface(1, alt: 0, endpoints: 0, class: 1)
            + Self.interface(1, alt: 1, endpoints: 1, class: 1)
            + [9, 0x05, 0x01, 0x05, 0x00, 0x01, 1, 0, 0] + [7, 0x25, 1, 0, 0, 0, 0]
            + secondAssociation + Self.interface(2, alt: 0, endpoints: 2)
            + Self.endpoint(0x82, attributes: 2, size: 1024) + companion
            + Self.endpoint(0x03, attributes: 2, size: 1024) + companion
        let (_, configurations) = try DescriptorParser.parse(
            Self.device + Self.configuration(value: 1, interfaces: 3, body))
        let configuration = try #require(configurations.first)
        #expect(configuration.extra == association, "what precedes the first interface is the configuration's")
        #expect(configuration.interfaces.map(\.number) == [0, 1, 2])
        #expect(configuration.interfaces[1].altSettings.map(\.alternateSetting) == [0, 1])
        let audio = try #require(configuration.interfaces[1].altSettings[1].endpoints.first)
        #expect(audio.address == 0x01 && audio.transferType == .isochronous && audio.maxPacketSize == 256)
        #expect(audio.extra == [7, 0x25, 1, 0, 0, 0, 0] + secondAssociation, "up to the next interface")
        let bulk = configuration.interfaces[2].altSettings[0].endpoints
        #expect(bulk.map(\.address) == [0x82, 0x03])
        #expect(bulk.allSatisfy { $0.extra == companion })
    }

    @Test func everyConfigurationInOrder() throws {
        let first = Self.configuration(value: 1, interfaces: 1, Self.interface(0, alt: 0, endpoints: 0))
        let second = Self.configuration(value: 2, interfaces: 1, Self.interface(0, alt: 0, endpoints: 0, class: 2))
        var device = Self.device
        device[17] = 2
        let (_, configurations) = try DescriptorParser.parse(device + first + second)
        #expect(configurations.map(\.value) == [1, 2])
        #expect(configurations[1].interfaces.first?.altSettings.first?.interfaceClass == 2)
    }

    @Test func truncatedDescriptorsAreRefused() {
        #expect(throws: DescriptorParser.Failure.truncated) { try DescriptorParser.parse(Array(Self.device.prefix(10))) }
        let configuration = Self.configuration(value: 1, interfaces: 1, Self.interface(0, alt: 0, endpoints: 0))
        #expect(throws: DescriptorParser.Failure.truncated) {
            try DescriptorParser.parse(Self.device + configuration.dropLast(3))
        }
    }

    @Test func anEndpointCountLargerThanWhatFollowsStopsAtTheEnd() throws {
        let configuration = Self.configuration(
            value: 1, interfaces: 2, Self.interface(0, alt: 0, endpoints: 3) + Self.endpoint(0x81, attributes: 2, size: 512))
        let (_, configurations) = try DescriptorParser.parse(Self.device + configuration)
        #expect(configurations.first?.interfaces.count == 1)
        #expect(configurations.first?.interfaces.first?.altSettings.first?.endpoints.count == 1)
    }
}
