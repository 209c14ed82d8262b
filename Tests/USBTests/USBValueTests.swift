import Testing

@testable import USB

@Suite struct DescriptorValueTests {
    @Test func endpointDirectionNumberAndType() {
        let bulkIn = EndpointDescriptor(address: 0x86, attributes: 0x02, maxPacketSize: 512, interval: 0)
        #expect(bulkIn.direction == .in && bulkIn.number == 6 && bulkIn.transferType == .bulk)
        let intOut = EndpointDescriptor(address: 0x02, attributes: 0x03, maxPacketSize: 64, interval: 4)
        #expect(intOut.direction == .out && intOut.transferType == .interrupt)
        #expect(EndpointDescriptor(address: 0x81, attributes: 0x05, maxPacketSize: 192, interval: 1).transferType
            == .isochronous)
    }

    @Test func configurationAttributes() {
        let config = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0xe0, maxPower: 50, totalLength: 25, interfaces: [])
        #expect(config.selfPowered && config.remoteWakeup)
        let busPowered = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 25, interfaces: [])
        #expect(!busPowered.selfPowered && !busPowered.remoteWakeup)
    }

    @Test func idsFollowSysfsNames() {
        #expect(USBDeviceInfo.id(bus: 3, portPath: []) == "usb3")
        #expect(USBDeviceInfo.id(bus: 1, portPath: [2]) == "1-2")
        #expect(USBDeviceInfo.id(bus: 12, portPath: [1, 4, 3]) == "12-1.4.3")
    }

    @Test func stringsByIndexAndTheIndexesInUse() {
        let descriptor = DeviceDescriptor(
            bcdUSB: 0x200, deviceClass: 0, deviceSubClass: 0, deviceProtocol: 0, maxPacketSize0: 64,
            vendorID: 0x1209, productID: 1, bcdDevice: 0x100, manufacturerIndex: 1, productIndex: 2,
            serialNumberIndex: 0, numConfigurations: 1)
        let alt = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: 0xff, interfaceSubClass: 0, interfaceProtocol: 0,
            stringIndex: 5, endpoints: [])
        let config = ConfigurationDescriptor(
            value: 1, stringIndex: 4, attributes: 0x80, maxPower: 50, totalLength: 18,
            interfaces: [Interface(number: 0, altSettings: [alt])])
        let info = USBDeviceInfo(
            bus: 1, address: 2, portPath: [1], speed: .high, descriptor: descriptor, configurations: [config],
            activeConfiguration: 1, strings: [1: "Maker", 2: "Thing", 4: "Config"])
        #expect(info.stringIndexes == [1, 2, 4, 5])
        #expect(info.manufacturer == "Maker" && info.product == "Thing")
        #expect(info.serial == nil, "index 0 means no string")
        #expect(info.string(5) == nil, "a string that could not be read")
    }

    @Test func speedsNameAndRate() {
        #expect(Speed.high.name == "high" && Speed.high.megabits == 480)
        #expect(Speed.low.megabits == 1.5)
        #expect(Speed.superPlus.name == "super_plus")
        #expect(Speed.unknown.megabits == nil)
    }
}

@Suite struct ClassCodeTests {
    @Test func namesAndCodesRoundTrip() {
        for code in UInt8.min...UInt8.max {
            #expect(ClassCode.code(named: ClassCode.name(code)) == code)
        }
        #expect(ClassCode.name(0x03) == "hid")
        #expect(ClassCode.name(0x42) == "class_0x42")
        #expect(ClassCode.code(named: "nonsense") == nil)
    }
}

@Suite struct USBErrorTests {
    @Test func namesComeFromLibusb() {
        #expect(USBError.pipe.name == "LIBUSB_ERROR_PIPE")
        #expect(USBError.noDevice.description.hasPrefix("LIBUSB_ERROR_NO_DEVICE: "))
    }

    @Test func checkThrowsOnlyNegativeCodes() throws {
        #expect(try USBError.check(Int32(5)) == 5)
        #expect(throws: USBError.timeout) { try USBError.check(USBError.timeout.rawValue) }
        #expect(throws: USBError.io) { try USBError.check(Int(USBError.io.rawValue)) }
    }
}
