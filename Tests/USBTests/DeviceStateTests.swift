import Testing

@testable import USB

/// The checks made before any URB, on a device like the lab's FunctionFS gadget plus a
/// second interface with an isochronous alternate setting.
@Suite struct DeviceStateTests {
    static let configuration: ConfigurationDescriptor = {
        let vendor = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: 0xff, interfaceSubClass: 0x42, interfaceProtocol: 0,
            stringIndex: 0,
            endpoints: [
                EndpointDescriptor(address: 0x81, attributes: 0x03, maxPacketSize: 64, interval: 4),
                EndpointDescriptor(address: 0x86, attributes: 0x02, maxPacketSize: 512, interval: 0),
                EndpointDescriptor(address: 0x02, attributes: 0x02, maxPacketSize: 512, interval: 0),
            ])
        let idle = InterfaceDescriptor(
            number: 1, alternateSetting: 0, interfaceClass: 1, interfaceSubClass: 2, interfaceProtocol: 0,
            stringIndex: 0, endpoints: [])
        let streaming = InterfaceDescriptor(
            number: 1, alternateSetting: 1, interfaceClass: 1, interfaceSubClass: 2, interfaceProtocol: 0,
            stringIndex: 0,
            endpoints: [
                EndpointDescriptor(address: 0x03, attributes: 0x09, maxPacketSize: 192, interval: 1),
                EndpointDescriptor(address: 0x84, attributes: 0x02, maxPacketSize: 512, interval: 0),
            ])
        return ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 0,
            interfaces: [
                Interface(number: 0, altSettings: [vendor]), Interface(number: 1, altSettings: [idle, streaming]),
            ])
    }()

    func state(claims: [DeviceState.Claim] = []) -> DeviceState {
        var state = DeviceState(configurations: [Self.configuration], activeConfiguration: 1)
        for claim in claims { state.claimed(claim) }
        return state
    }

    @Test func claimsNeedAnExistingFreeInterfaceOfAnActiveConfiguration() throws {
        #expect(throws: Never.self) { try state().checkClaim(0) }
        #expect(throws: DeviceStateError.interfaceNotFound(2, configuration: 1)) { try state().checkClaim(2) }
        #expect(throws: DeviceStateError.interfaceClaimed(0)) {
            try state(claims: [.init(interface: 0)]).checkClaim(0)
        }
        var unconfigured = state()
        unconfigured.configured(nil)
        #expect(throws: DeviceStateError.unconfigured) { try unconfigured.checkClaim(0) }
        #expect(throws: DeviceStateError.interfaceNotClaimed(1)) { try state().claim(1) }
    }

    @Test func endpointsMustBeInTheCurrentAltSettingOfAClaimedInterface() throws {
        let claimed = state(claims: [.init(interface: 0), .init(interface: 1)])
        #expect(try claimed.endpoint(0x86, for: .read).maxPacketSize == 512)
        #expect(try claimed.endpoint(0x81, for: .read).transferType == .interrupt)
        #expect(try claimed.endpoint(0x02, for: .write).direction == .out)
        #expect(throws: DeviceStateError.interfaceNotClaimed(0)) { try state().endpoint(0x86, for: .read) }
        #expect(throws: DeviceStateError.wrongDirection(0x02, expected: .in)) { try claimed.endpoint(0x02, for: .read) }
        #expect(throws: DeviceStateError.wrongDirection(0x86, expected: .out)) {
            try claimed.endpoint(0x86, for: .write)
        }
        #expect(throws: DeviceStateError.controlEndpoint(0x80)) { try claimed.endpoint(0x80, for: .read) }
        // 0x84 lives in alternate setting 1 of interface 1, which is not selected: the error says so.
        #expect(throws: DeviceStateError.endpointNotInAltSetting(0x84, interface: 1, current: 0, candidates: [1])) {
            try claimed.endpoint(0x84, for: .read)
        }
        #expect(throws: DeviceStateError.endpointNotFound(0x05, configuration: 1)) {
            try claimed.endpoint(0x05, for: .read)
        }
        var streaming = claimed
        try streaming.checkAltSetting(interface: 1, altSetting: 1)
        streaming.altSettingSelected(interface: 1, altSetting: 1)
        #expect(try streaming.endpoint(0x84, for: .read).address == 0x84)
        #expect(throws: DeviceStateError.wrongType(0x03, .isochronous)) { try streaming.endpoint(0x03, for: .write) }
        #expect(try streaming.endpoint(0x03, for: .isoWrite).maxPacketSize == 192)
        #expect(throws: DeviceStateError.wrongType(0x84, .bulk)) { try streaming.endpoint(0x84, for: .isoRead) }
        #expect(throws: DeviceStateError.wrongDirection(0x03, expected: .in)) { try streaming.endpoint(0x03, for: .isoRead) }
        #expect(streaming.currentEndpoint(0x03)?.transferType == .isochronous)
        #expect(claimed.currentEndpoint(0x03) == nil)
        streaming.wasReset()
        #expect(streaming.claims[1]?.altSetting == 0)
    }

    @Test func altSettingsAndConfigurations() {
        #expect(throws: DeviceStateError.interfaceNotClaimed(1)) { try state().checkAltSetting(interface: 1, altSetting: 1) }
        #expect(throws: DeviceStateError.altSettingNotFound(interface: 1, altSetting: 2)) {
            try state(claims: [.init(interface: 1)]).checkAltSetting(interface: 1, altSetting: 2)
        }
        #expect(throws: Never.self) { try state().checkConfiguration(1) }
        #expect(throws: Never.self) { try state().checkConfiguration(nil) }
        #expect(throws: DeviceStateError.configurationNotFound(2, available: [1])) { try state().checkConfiguration(2) }
        #expect(throws: DeviceStateError.claimsHeld([0])) {
            try state(claims: [.init(interface: 0)]).checkConfiguration(1)
        }
    }

    /// An isochronous transfer: 1 to 128 packets, none over what the endpoint carries per
    /// interval (wMaxPacketSize times its transactions, or a SuperSpeed companion's
    /// wBytesPerInterval); an endpoint with no bandwidth in the current setting points to one with.
    @Test func isochronousPacketsFitTheEndpoint() throws {
        let audio = EndpointDescriptor(address: 0x03, attributes: 0x09, maxPacketSize: 192, interval: 1)
        #expect(throws: Never.self) { try DeviceState.checkIsoPackets([192, 192, 0, 100], for: audio) }
        #expect(throws: DeviceStateError.isoPacketTooLarge(0x03, length: 193, max: 192)) {
            try DeviceState.checkIsoPackets([192, 193], for: audio)
        }
        #expect(throws: DeviceStateError.isoPacketCount(0, max: 128)) { try DeviceState.checkIsoPackets([], for: audio) }
        #expect(throws: DeviceStateError.isoPacketCount(129, max: 128)) {
            try DeviceState.checkIsoPackets(Array(repeating: 1, count: 129), for: audio)
        }
        // High bandwidth: 1024 bytes, 3 transactions a microframe (bits 11-12 = 2).
        let video = EndpointDescriptor(address: 0x81, attributes: 0x05, maxPacketSize: 0x1400, interval: 1)
        #expect(DeviceState.maxIsoPacketBytes(video) == 3072)
        // SuperSpeed: the companion (6 bytes, type 0x30) says 0x6000 bytes per interval.
        let superSpeed = EndpointDescriptor(
            address: 0x81, attributes: 0x05, maxPacketSize: 1024, interval: 1, extra: [6, 0x30, 15, 1, 0x00, 0x60])
        #expect(DeviceState.maxIsoPacketBytes(superSpeed) == 0x6000)

        // Setting 0 lists the endpoint with no bandwidth, setting 1 with some.
        let zero = InterfaceDescriptor(
            number: 0, alternateSetting: 0, interfaceClass: 0x0e, interfaceSubClass: 2, interfaceProtocol: 0,
            stringIndex: 0, endpoints: [EndpointDescriptor(address: 0x81, attributes: 0x05, maxPacketSize: 0, interval: 1)])
        let some = InterfaceDescriptor(
            number: 0, alternateSetting: 1, interfaceClass: 0x0e, interfaceSubClass: 2, interfaceProtocol: 0,
            stringIndex: 0, endpoints: [video])
        let camera = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 0,
            interfaces: [Interface(number: 0, altSettings: [zero, some])])
        var state = DeviceState(configurations: [camera], activeConfiguration: 1)
        state.claimed(.init(interface: 0))
        #expect(throws: DeviceStateError.endpointNotInAltSetting(0x81, interface: 0, current: 0, candidates: [1])) {
            try state.endpoint(0x81, for: .isoRead)
        }
    }

    /// The bytes of IN packets, each at its own offset in the buffer, packed one after another.
    @Test func isochronousPacketsArePackedInOrder() {
        var buffer: [UInt8] = [1, 2, 0, 0, 3, 0, 0, 0, 4, 5, 6, 7]
        let packets = [
            IsoPacketResult(length: 4, actualLength: 2, status: .completed),
            IsoPacketResult(length: 4, actualLength: 1, status: .completed),
            IsoPacketResult(length: 2, actualLength: 0, status: .error),
            IsoPacketResult(length: 2, actualLength: 2, status: .completed),
        ]
        // Packet 3 starts at offset 10: [6, 7].
        let count = buffer.withUnsafeMutableBytes { IsoLayout.pack(packets, in: $0.baseAddress!) }
        #expect(count == 5)
        #expect(Array(buffer.prefix(count)) == [1, 2, 3, 6, 7])
        let result = IsoTransferResult(status: .completed, packets: packets)
        #expect(result.actualLength == 5 && result.failedPackets == 1)
    }

    @Test func streamTransfersAreWholePackets() throws {
        let bulk = EndpointDescriptor(address: 0x86, attributes: 0x02, maxPacketSize: 512, interval: 0)
        #expect(try DeviceState.checkTransferSize(65536, for: bulk) == 512)
        #expect(throws: DeviceStateError.transferSizeNotPacketMultiple(size: 1000, maxPacketSize: 512)) {
            try DeviceState.checkTransferSize(1000, for: bulk)
        }
    }

    @Test func controlSetupPacketsAreLittleEndian() {
        let setup = ControlSetup(
            direction: .in, kind: .vendor, recipient: .interface, request: 0x5c, value: 0x1234, index: 0x0002,
            length: 0x0100)
        #expect(setup.requestType == 0xc1)
        #expect(setup.bytes == [0xc1, 0x5c, 0x34, 0x12, 0x02, 0x00, 0x00, 0x01])
        let parts = ControlSetup.parts(of: 0x21)
        #expect(parts?.0 == .out && parts?.1 == .class && parts?.2 == .interface)
        #expect(ControlSetup.parts(of: 0x84) == nil)
    }
}
