import Testing
import TestSupport
import USBFakes

/// Kernel drivers on the URB channel follow libusb's rules on Linux (the fake device models
/// them: a claim with auto-detach detaches, the release attaches again; a claim without it
/// fails BUSY on a bound driver): a driver the client detached itself stays detached after
/// the release, and the channel's end gives back what it detached.
@Suite struct URBChannelDriverTests {
    typealias T = URBChannelTests

    static func operation(_ socket: TestWebSocket, _ op: URBWire.Op, id: Int, a: Int, b: Int = 0) async throws -> URBWire.Result {
        try socket.send(URBWire.operation(op, id: id, a: a, b: b))
        let result = try await T.result(socket)
        #expect(result.id == id)
        return result
    }

    @Test func aClaimThatDetachedGivesTheDriverBackOnRelease() async throws {
        let bench = FakeBench()
        bench.device.bindDriver(0)
        let server = try bench.server()
        let (socket, _) = try await T.open(server)
        let busy = try await Self.operation(socket, .claim, id: 1, a: 0, b: 0)
        #expect(busy.error == -6, "a bound driver, no detach asked: BUSY")
        let claimed = try await Self.operation(socket, .claim, id: 2, a: 0, b: 1)
        #expect(claimed.error == 0 && claimed.value == 1, "detached")
        #expect(!bench.device.driverIsBound(0))
        #expect(try await Self.operation(socket, .release, id: 3, a: 0).error == 0)
        #expect(bench.device.driverIsBound(0), "libusb's auto-detach attaches it again")
        await server.shutdown()
    }

    @Test func aDriverTheClientDetachedStaysDetachedUntilTheChannelEnds() async throws {
        let bench = FakeBench()
        bench.device.bindDriver(0)
        let server = try bench.server()
        let (socket, _) = try await T.open(server)
        #expect(try await Self.operation(socket, .detachKernelDriver, id: 1, a: 0).error == 0)
        let claimed = try await Self.operation(socket, .claim, id: 2, a: 0, b: 0)
        #expect(claimed.error == 0 && claimed.value == 0)
        #expect(try await Self.operation(socket, .release, id: 3, a: 0).error == 0)
        #expect(!bench.device.driverIsBound(0), "as libusb_release_interface leaves it")
        #expect(try await Self.operation(socket, .kernelDriverActive, id: 4, a: 0).value == 0)
        socket.connection.close()
        #expect(await eventually { bench.device.driverIsBound(0) }, "the channel's end attaches it again")
        await server.shutdown()
    }
}
