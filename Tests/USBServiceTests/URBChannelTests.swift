import Foundation
import HTTPServer
import Synchronization
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// The URB channel over a scripted device, through the real server (the sessions and the server
/// on one loop, as in the daemon), messages written as docs/urb-channel.md says (TestSupport's
/// URBWire): every message kind, many transfers in flight, cancels, timeouts keeping their
/// bytes, hang-ups and unplugs leaving nothing held, refusals per message, and bad messages
/// closing the channel. No USB here; the lab checks the real thing.
@Suite struct URBChannelTests {
    static let path = "/v1/devices/1-2/urb"

    /// A channel on a bench's device, its HELLO read.
    static func open(_ server: HTTPServer, headers: [String: String] = [:]) async throws -> (TestWebSocket, URBWire.Hello) {
        let socket = try await TestWebSocket(port: Int(server.port), path: path, headers: headers)
        #expect(socket.status == 101, "\(socket.headers)")
        let first = try #require(try await socket.message())
        let hello = try #require(URBWire.Hello(first))
        return (socket, hello)
    }

    static func complete(_ socket: TestWebSocket) async throws -> URBWire.Complete {
        let message = try #require(try await socket.message(), "a COMPLETE")
        return try #require(URBWire.Complete(message), "\(message)")
    }

    static func result(_ socket: TestWebSocket) async throws -> URBWire.Result {
        let message = try #require(try await socket.message(), "a RESULT")
        return try #require(URBWire.Result(message), "\(message)")
    }

    static func claim(_ socket: TestWebSocket, _ interface: Int = 0, id: Int = 900) async throws {
        try socket.send(URBWire.operation(.claim, id: id, a: interface, b: 1))
        let result = try await result(socket)
        #expect(result.error == 0 && result.id == id, "\(result.error) \(result.reason)")
    }

    @Test func helloSaysWhatTheChannelTakes() async throws {
        let bench = FakeBench()
        let server = try bench.server()
        let (socket, hello) = try await Self.open(server)
        #expect(socket.headers["sec-websocket-protocol"] == "usbhttpd.urb.1")
        #expect(hello.version == 1 && hello.device == "1-2" && hello.address == 5 && hello.configuration == 1)
        #expect(hello.maxInFlight == 64 && hello.maxTransfer == 1 << 20 && hello.maxTimeout == 600_000)
        #expect(hello.maxMessage >= hello.maxTransfer + 24 && hello.scope == 2)
        await server.shutdown()
    }

    @Test func aControlTransferGoesOutAndItsDataComesBack() async throws {
        let bench = FakeBench { urb in urb.type == .control ? .complete(data: [0xde, 0xad, 0xbe, 0xef]) : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try socket.send(
            URBWire.submit(.control, endpoint: 0, id: 7, length: 64, setup: URBWire.setup(0xc0, 0x5c, value: 3, length: 64)))
        let done = try await Self.complete(socket)
        #expect(done.id == 7 && done.status == 0 && done.actualLength == 4 && done.rest == [0xde, 0xad, 0xbe, 0xef])
        #expect(bench.device.submitted.last?.setup == ControlSetup(direction: .in, kind: .vendor, recipient: .device, request: 0x5c, value: 3, length: 64))
        // OUT: the data stage in the message.
        try socket.send(
            URBWire.submit(.control, endpoint: 0, id: 8, length: 3, setup: URBWire.setup(0x40, 0x5b, length: 3), data: [1, 2, 3]))
        let out = try await Self.complete(socket)
        #expect(out.id == 8 && out.status == 0 && out.actualLength == 3 && out.rest.isEmpty)
        #expect(bench.device.submitted.last?.data == [1, 2, 3])
        await server.shutdown()
    }

    @Test func thirtyTwoReadsInFlightOnOneEndpointCompleteEachOnItsOwnInOrder() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        for id in 1...32 { try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: id, length: 512)) }
        let held = try await bench.device.waitForHeld(32)
        #expect(held.count == 32)
        #expect(bench.budget.inUse == 32 * 512)
        for (index, urb) in held.enumerated() { bench.device.complete(urb.id, with: .complete(data: [UInt8(index)])) }
        for id in 1...32 {
            let done = try await Self.complete(socket)
            #expect(done.id == id && done.status == 0 && done.rest == [UInt8(id - 1)])
        }
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 }, "\(bench.budget.inUse) \(bench.device.dmaBytesInUse)")
        await server.shutdown()
    }

    @Test func oneCancelledAmongManyKeepsTheBytesThatCame() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold(partial: [9, 9]) : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        for id in 1...4 { try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: id, length: 512)) }
        _ = try await bench.device.waitForHeld(4)
        try socket.send(URBWire.cancel(id: 3))
        let cancelled = try await Self.complete(socket)
        #expect(cancelled.id == 3 && cancelled.status == URBWire.Status.cancelled.code)
        #expect(cancelled.actualLength == 2 && cancelled.rest == [9, 9], "what came is not lost")
        #expect(try await bench.device.heldURBs().count == 3)
        try socket.send(URBWire.cancel(id: 99))  // not in flight: nothing
        await server.shutdown()
    }

    @Test func aTimeoutKeepsWhatCame() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x83 ? .hold(partial: [1, 2, 3]) : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        try socket.send(URBWire.submit(.interrupt, endpoint: 0x83, id: 1, length: 64, timeout: 30))
        let done = try await Self.complete(socket)
        #expect(done.status == URBWire.Status.timedOut.code && done.rest == [1, 2, 3])
        await server.shutdown()
    }

    @Test func anOutTransfersDataGoesStraightToTheDevice() async throws {
        let bench = FakeBench()
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 3) }
        try socket.send(URBWire.submit(.bulk, endpoint: 0x02, id: 5, length: data.count, flags: 2, data: data))
        let done = try await Self.complete(socket)
        #expect(done.id == 5 && done.status == 0 && done.actualLength == data.count && done.rest.isEmpty)
        let urb = try #require(bench.device.submitted.last)
        #expect(urb.data == data && urb.flags.contains(.zeroPacket))
        await server.shutdown()
    }

    @Test func aClaimAndASubmitSentTogetherRunInOrder() async throws {
        let bench = FakeBench { _ in .complete(data: [4]) }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try socket.sendRaw(
            TestWebSocket.frame(2, URBWire.operation(.claim, id: 1, a: 0, b: 1))
                + TestWebSocket.frame(2, URBWire.submit(.bulk, endpoint: 0x02, id: 2, length: 2, data: [5, 6]))
                + TestWebSocket.frame(2, URBWire.submit(.bulk, endpoint: 0x81, id: 3, length: 64)))
        #expect(try await Self.result(socket).error == 0)
        #expect(try await Self.complete(socket).id == 2)
        let read = try await Self.complete(socket)
        #expect(read.id == 3 && read.rest == [4])
        #expect(bench.device.calls == ["kernel-driver-active 0", "claim 0"])
        await server.shutdown()
    }

    @Test func aHangUpWithTransfersInFlightLeavesNothingHeld() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        for id in 1...8 { try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: id, length: 4096)) }
        _ = try await bench.device.waitForHeld(8)
        socket.connection.close()
        #expect(await eventually { await bench.device.heldURBs().isEmpty }, "cancelled")
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        #expect(await eventually { bench.device.calls.contains("release 0") }, "its claim released")
        #expect(await eventually { await bench.session.state.claims.isEmpty })
        await server.shutdown()
    }

    @Test func anUnpluggedDeviceCompletesEverythingThenSaysSo() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        for id in 1...3 { try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: id, length: 512)) }
        _ = try await bench.device.waitForHeld(3)
        bench.device.unplug()
        var ids: Set<Int> = []
        for _ in 1...3 {
            let done = try await Self.complete(socket)
            #expect(done.status == URBWire.Status.noDevice.code)
            ids.insert(done.id)
        }
        #expect(ids == [1, 2, 3])
        // The session learns it when the next request fails: the channel's next SUBMIT says so.
        try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: 4, length: 512))
        let after = try await Self.complete(socket)
        #expect(after.id == 4 && after.status != 0)
        await server.shutdown()
    }

    @Test(arguments: [
        // SET_ADDRESS, in any form: refused.
        (URBWire.submit(.control, endpoint: 0, id: 1, length: 0, setup: URBWire.setup(0x00, 0x05, value: 9, length: 0)),
         -3, "request-refused"),
        // SET_CONFIGURATION through control: the operation is the way.
        (URBWire.submit(.control, endpoint: 0, id: 1, length: 0, setup: URBWire.setup(0x00, 0x09, value: 1, length: 0)),
         -12, "use-dedicated-route"),
        // An endpoint of an interface nobody claimed.
        (URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 512), -5, "interface-not-claimed"),
        // Interrupt on a bulk endpoint.
        (URBWire.submit(.interrupt, endpoint: 0x81, id: 1, length: 512), -5, "interface-not-claimed"),
        // A timeout past the daemon's limit.
        (URBWire.submit(.control, endpoint: 0, id: 1, length: 1, timeout: 700_000, setup: URBWire.setup(0xc0, 1, length: 1)),
         -2, "invalid-parameter"),
    ])
    func aSubmitTheRulesRefuseIsAnsweredAndTheChannelGoesOn(message: [UInt8], error: Int, code: String) async throws {
        let bench = FakeBench()
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try socket.send(message)
        let refused = try await Self.complete(socket)
        #expect(refused.id == 1 && refused.status == 1 && refused.error == error, "\(refused.reason)")
        #expect(refused.reason.range(of: #"^[0-9]{3} "# + code + ":", options: .regularExpression) != nil, "\(refused.reason)")
        #expect(bench.device.submitted.isEmpty)
        try await Self.claim(socket)
        await server.shutdown()
    }

    @Test func aLeaseHeldByAnotherRefusesEveryMessageItCovers() async throws {
        let bench = FakeBench()
        let server = try bench.server()
        let client = TestHTTPClient(port: Int(server.port))
        let lease = try await client.request("POST", "/v1/devices/1-2/leases?ttl_ms=60000")
        #expect(lease.status == 201)
        let (socket, _) = try await Self.open(server)
        try socket.send(URBWire.operation(.claim, id: 1, a: 0, b: 1))
        let claim = try await Self.result(socket)
        #expect(claim.error == -6 && claim.reason.hasPrefix("423 lease-held:"), "\(claim.reason)")
        try socket.send(URBWire.submit(.control, endpoint: 0, id: 2, length: 1, setup: URBWire.setup(0xc0, 1, length: 1)))
        let control = try await Self.complete(socket)
        #expect(control.error == -6 && control.reason.hasPrefix("423 lease-held:"))
        // Under the lease's token, another channel may; and this one once it uses it.
        let token = try #require(try lease.object()["token"] as? String)
        let (leased, _) = try await Self.open(server, headers: ["X-USB-Lease": token])
        try await Self.claim(leased)
        try await Self.claim(leased, 1)
        try socket.send(URBWire.operation(.useLease, id: 3) + Array(token.utf8))
        #expect(try await Self.result(socket).error == 0)
        try socket.send(URBWire.submit(.control, endpoint: 0, id: 4, length: 1, setup: URBWire.setup(0xc0, 1, length: 1)))
        #expect(try await Self.complete(socket).error == 0)
        await server.shutdown()
    }

    @Test func resetAndAnotherConfigurationNeedTheAdminScope() async throws {
        let bench = FakeBench()
        let tokens = try TokenFile(text: "ops transfer 0123456789abcdef0123\nroot admin fedcba9876543210fedc\n")
        let server = try bench.server(tokens: tokens)
        let (socket, hello) = try await Self.open(server, headers: ["Authorization": "Bearer 0123456789abcdef0123"])
        #expect(hello.scope == 1)
        try socket.send(URBWire.operation(.reset, id: 1))
        let reset = try await Self.result(socket)
        #expect(reset.error == -3 && reset.reason.hasPrefix("403 insufficient-scope:"), "\(reset.reason)")
        try socket.send(URBWire.operation(.setConfiguration, id: 2, a: 0))
        #expect(try await Self.result(socket).error == -3)
        try socket.send(URBWire.operation(.getConfiguration, id: 3))
        #expect(try await Self.result(socket).value == 1)
        let (admin, _) = try await Self.open(server, headers: ["Authorization": "Bearer fedcba9876543210fedc"])
        try admin.send(URBWire.operation(.reset, id: 4))
        #expect(try await Self.result(admin).error == 0)
        #expect(bench.device.calls.contains("reset"))
        let none = try await TestWebSocket(port: Int(server.port), path: Self.path)
        #expect(none.status == 401)
        await server.shutdown()
    }

    @Test(arguments: [
        ([0x01, 0x02], 1008),  // short
        ([0x07, 0, 0, 0, 0, 0, 0, 0], 1008),  // unknown kind
        ([0x82] + [UInt8](repeating: 0, count: 15), 1008),  // a daemon's kind
        (URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 4, data: [1, 2, 3, 4]), 1008),  // data for IN
        (URBWire.submit(.bulk, endpoint: 0x02, id: 1, length: 4, data: [1, 2]), 1008),  // less data than its length
        (URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 2 << 20), 1009),  // oversized
        (URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 8, flags: 0x80), 1008),  // unknown flag
        (URBWire.submit(.isochronous, endpoint: 0x85, id: 1, length: 10, packets: [4, 4]), 1008),  // packets ≠ length
        (URBWire.cancel(id: 1) + [0], 1008),  // long cancel
    ])
    func aBadMessageClosesTheChannel(message: [UInt8], code: Int) async throws {
        let bench = FakeBench()
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try socket.send(message)
        let frame = try #require(try await socket.receive())
        #expect(frame.closeCode == UInt16(code), "\(frame.closeReason)")
        try socket.sendRaw(TestWebSocket.frame(8, [0x03, 0xe8]))
        #expect(await socket.closedByServer(within: 5))
        let (other, _) = try await Self.open(server)
        try await Self.claim(other)
        await server.shutdown()
    }

    @Test func anIdInFlightCannotBeUsedAgain() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        let server = try bench.server()
        let (socket, _) = try await Self.open(server)
        try await Self.claim(socket)
        try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 512))
        _ = try await bench.device.waitForHeld(1)
        try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: 1, length: 512))
        var closeCode: UInt16?
        while let frame = try await socket.receive(), closeCode == nil { closeCode = frame.closeCode }
        #expect(closeCode == 1008)
        #expect(await eventually { await bench.device.heldURBs().isEmpty })
        await server.shutdown()
    }

    @Test func thousandsOfRandomMessagesHurtNothing() async throws {
        let bench = FakeBench()
        let server = try bench.server()
        var generator = SystemRandomNumberGenerator()
        for round in 0..<40 {
            let socket = try await TestWebSocket(port: Int(server.port), path: Self.path)
            var burst: [UInt8] = []
            for _ in 0..<60 {
                var message: [UInt8]
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: message = (0..<Int.random(in: 0..<40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                case 1:
                    message = URBWire.submit(
                        [.control, .bulk, .interrupt, .isochronous].randomElement(using: &generator)!,
                        endpoint: [0x00, 0x81, 0x02, 0x83, 0x04, 0x85].randomElement(using: &generator)!,
                        id: Int.random(in: 0..<8, using: &generator), length: Int.random(in: 0..<70, using: &generator),
                        setup: Bool.random(using: &generator) ? URBWire.setup(0xc0, 1, length: 8) : nil)
                case 2: message = URBWire.operation(URBWire.Op(rawValue: UInt8.random(in: 1...10, using: &generator))!, id: round, a: Int.random(in: -2..<4, using: &generator))
                default: message = URBWire.cancel(id: Int.random(in: 0..<8, using: &generator))
                }
                if Bool.random(using: &generator), !message.isEmpty {
                    message.removeLast(Int.random(in: 1...message.count, using: &generator))  // truncated
                }
                burst += TestWebSocket.frame(2, message)
            }
            try? socket.sendRaw(burst)
            socket.connection.close()
        }
        // The daemon holds nothing for the channels that are gone, and serves others normally
        // (the messages may have unconfigured the device, as an admin may: configured again).
        #expect(await eventually { await bench.session.state.claims.isEmpty }, "their claims released")
        let (socket, _) = try await Self.open(server)
        try socket.send(URBWire.operation(.setConfiguration, id: 4, a: 1))
        #expect(try await Self.result(socket).error == 0)
        try await Self.claim(socket, id: 5)
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }
}

