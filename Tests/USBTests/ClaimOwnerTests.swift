import EventLoop
import Logging
import Testing
import USB
import USBFakes

/// A claim made for an owner (a URB channel) is given back only by that owner: one released
/// and claimed again by someone else meanwhile stays theirs.
@Suite struct ClaimOwnerTests {
    static let loop: EventLoop = try! EventLoop(name: "claims-loop", logger: Logger(label: "test"))

    static func session() throws -> (DeviceSession, ScriptedDevice) {
        let device = ScriptedDevice(loop: loop)
        let interface = Interface(number: 0, altSettings: [
            InterfaceDescriptor(
                number: 0, alternateSetting: 0, interfaceClass: 0xff, interfaceSubClass: 0, interfaceProtocol: 0,
                stringIndex: 0, endpoints: [])
        ])
        let configuration = ConfigurationDescriptor(
            value: 1, stringIndex: 0, attributes: 0x80, maxPower: 50, totalLength: 18, interfaces: [interface])
        let session = try DeviceSession(
            io: device, id: "9-9", address: 3, configurations: [configuration], activeConfiguration: 1, loop: loop)
        return (session, device)
    }

    @Test func onlyItsOwnerGivesAClaimBack() async throws {
        let (session, device) = try Self.session()
        let first = ClaimOwner(), second = ClaimOwner()
        _ = try await session.claim(0, detach: false, owner: first)
        #expect(try await session.release(0, ifOwnedBy: second) == false)
        #expect(await session.state.claims[0] != nil)
        // Released and claimed again by another: the first owner's late give-back leaves it.
        try await session.release(0)
        _ = try await session.claim(0, detach: false, owner: second)
        #expect(try await session.release(0, ifOwnedBy: first) == false)
        #expect(await session.state.claims[0]?.owner == second)
        #expect(try await session.release(0, ifOwnedBy: second) == true)
        #expect(await session.state.claims.isEmpty)
        #expect(device.calls.filter { $0.hasPrefix("release") } == ["release 0", "release 0"])
    }
}
