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
        // 0x84 lives in alternate setting 1 of interface 1, which is not selected.
        #expect(throws: DeviceStateError.endpointNotFound(0x84, configuration: 1)) {
            try claimed.endpoint(0x84, for: .read)
        }
        var streaming = claimed
        try streaming.checkAltSetting(interface: 1, altSetting: 1)
        streaming.altSettingSelected(interface: 1, altSetting: 1)
        #expect(try streaming.endpoint(0x84, for: .read).address == 0x84)
        #expect(throws: DeviceStateError.wrongType(0x03, .isochronous)) { try streaming.endpoint(0x03, for: .write) }
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
