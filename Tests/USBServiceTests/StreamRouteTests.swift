import Foundation
import HTTPServer
import Synchronization
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// The stream routes over a scripted device, through the real server on a loopback port (the
/// sessions and the server on one loop, as in the daemon): bytes in order both ways, and every
/// way a stream ends (its size, the device, the client hanging up), with nothing left held.
/// No USB here; the lab checks the real thing.
@Suite struct StreamRouteTests {
    static let id = "1-2"

    /// A bench whose bulk IN endpoint sends `pattern` bytes and whose OUT endpoints take all.
    static func bench(holdingINAfter: Int = .max) -> FakeBench {
        let count = Atomic(0)
        return FakeBench { urb in
            guard urb.endpoint & 0x80 != 0, urb.type != .control else { return .complete() }
            let index = count.wrappingAdd(1, ordering: .relaxed).oldValue
            if index >= holdingINAfter { return .hold() }
            return .complete(data: pattern(urb.length, from: index * urb.length))
        }
    }

    static func pattern(_ count: Int, from start: Int = 0) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 + start) % 251) }
    }

    /// Claims `interface` through the server.
    static func claim(_ port: UInt16, _ interface: Int = 0) async throws {
        let claimed = try await TestHTTPClient(port: Int(port)).request(
            "POST", "/v1/devices/\(id)/interfaces/\(interface)/claim")
        #expect(claimed.status == 200, "\(claimed.text)")
    }

    @Test func aStreamInDeliversTheEndpointsBytesInOrderAndGivesEverythingBack() async throws {
        let bench = Self.bench()
        let server = try bench.server()
        try await Self.claim(server.port)
        let connection = try RawConnection(port: Int(server.port))
        try connection.send(
            "GET /v1/devices/\(Self.id)/endpoints/0x81/stream?max_bytes=1000000&transfers=4&transfer_size=16384 HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nTE: trailers\r\n\r\n")
        let response = try #require(try await connection.chunkedResponse(within: 20))
        #expect(response.status == 200 && response.complete)
        #expect(response.headers["x-usb-buffer-source"] == "zero-copy")
        #expect(response.body == Self.pattern(1_000_000))
        #expect(response.trailers["x-usb-stream-end"] == "limit" && response.trailers["x-usb-stream-bytes"] == "1000000")
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        #expect(bench.device.submitted.allSatisfy { $0.endpoint == 0x81 && $0.length == 16384 })
        await server.shutdown()
    }

    @Test func aClientThatHangsUpMidStreamCancelsItsTransfers() async throws {
        let bench = Self.bench(holdingINAfter: 6)
        let server = try bench.server()
        try await Self.claim(server.port)
        let connection = try RawConnection(port: Int(server.port))
        try connection.send("GET /v1/devices/\(Self.id)/endpoints/0x81/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(try await bench.device.waitForHeld(8).count == 8, "every buffer back on the bus, waiting")
        connection.close()
        #expect(await eventually { await bench.device.heldURBs().isEmpty }, "the held URBs were cancelled")
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }

    @Test func aDeviceUnpluggedMidStreamCutsTheBody() async throws {
        let bench = Self.bench(holdingINAfter: 3)
        let server = try bench.server()
        try await Self.claim(server.port)
        let connection = try RawConnection(port: Int(server.port))
        try connection.send("GET /v1/devices/\(Self.id)/endpoints/0x81/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _ = try await bench.device.waitForHeld(8)
        bench.device.unplug()
        let response = try #require(try await connection.chunkedResponse(within: 10))
        #expect(response.status == 200 && !response.complete, "no last chunk: the client sees an incomplete body")
        #expect(response.body == Self.pattern(3 * 65536))
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }

    @Test func anUploadGoesOutInOrderInTransfersOfItsSize() async throws {
        let bench = Self.bench()
        let server = try bench.server()
        try await Self.claim(server.port)
        let body = Self.pattern(300_000, from: 7)
        let connection = try RawConnection(port: Int(server.port))
        try connection.send(
            "POST /v1/devices/\(Self.id)/endpoints/0x02/stream?transfers=2&transfer_size=65536&zlp=true HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nContent-Length: \(body.count)\r\n\r\n")
        try connection.send(bytes: body)
        let response = try #require(try await connection.chunkedResponse(within: 20))
        #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        let answer = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(answer["actual_length"] as? Int == body.count && answer["requested_length"] as? Int == body.count)
        let out = bench.device.submitted.filter { $0.endpoint == 0x02 }
        #expect(out.map(\.length) == [65536, 65536, 65536, 65536, 300_000 - 4 * 65536])
        #expect(out.flatMap(\.data) == body)
        #expect(!out.contains { $0.flags.contains(.zeroPacket) }, "a last piece that does not fill its packet needs no ZLP")
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }

    @Test func anUploadWhoseClientLeavesWhileHeldBackEndsAndGivesEverythingBack() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x02 ? .hold() : .complete() }
        let server = try bench.server()
        try await Self.claim(server.port)
        let connection = try RawConnection(port: Int(server.port))
        try connection.send(
            "POST /v1/devices/\(Self.id)/endpoints/0x02/stream?transfers=2&transfer_size=4096 HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n")
        try await connection.sendOffThePool(String(repeating: "x", count: 65536))
        #expect(try await bench.device.waitForHeld(2).count == 2, "both buffers in flight, the client held back")
        connection.close()
        #expect(await eventually { await bench.device.heldURBs().isEmpty })
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }

    @Test func anIsochronousUploadIsCutIntoPackets() async throws {
        let bench = Self.bench()
        let server = try bench.server()
        try await Self.claim(server.port, 1)
        let client = TestHTTPClient(port: Int(server.port))
        let alt = try await client.request("PUT", "/v1/devices/\(Self.id)/interfaces/1/alt-setting?value=1")
        #expect(alt.status == 200)
        let body = Self.pattern(192 * 10 + 100)
        let answer = try await client.request(
            "POST", "/v1/devices/\(Self.id)/endpoints/0x04/stream?packets=4", body: body)
        #expect(answer.status == 200, "\(answer.text)")
        let summary = try answer.object()
        #expect(summary["packets"] as? Int == 11 && summary["failed_packets"] as? Int == 0)
        #expect(summary["actual_length"] as? Int == body.count)
        let out = bench.device.submitted.filter { $0.endpoint == 0x04 }
        #expect(out.map(\.isoPackets) == [[192, 192, 192, 192], [192, 192, 192, 192], [192, 192, 100]])
        #expect(out.flatMap(\.data) == body)
        #expect(await eventually { bench.budget.inUse == 0 && bench.device.dmaBytesInUse == 0 })
        await server.shutdown()
    }
}
