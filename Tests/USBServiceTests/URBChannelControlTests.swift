import Foundation
import HTTPServer
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// Issue 24, class 4: the URB channel's control transfers take their turn on endpoint 0 with
/// REST's (one queue per device): a slow one is cut when another client waits past the limit,
/// and one whose timeout runs out while it waits completes TIMED_OUT with nothing sent.
@Suite struct URBChannelControlTests {
    /// Vendor request 0x30 never completes (a firmware that answers late); others at once.
    static func slowBoard(holdLimit: Int) -> FakeBench {
        FakeBench(controlHoldLimit: holdLimit) { urb in urb.setup?.request == 0x30 ? .hold() : .complete(data: [9, 9]) }
    }

    static func restControl(_ bench: FakeBench, request: Int, timeout: Int) async -> HTTPResponse {
        var http = HTTPRequest(
            method: "POST", path: "/v1/devices/1-2/control",
            query: [("request_type", "0xc0"), ("request", String(request)), ("length", "2"), ("timeout_ms", String(timeout))]
                .map { (name: $0.0, value: $0.1) })
        http.remoteAddress = "10.9.9.9"
        return await bench.api().response(to: http)
    }

    @Test func aChannelsSlowControlTransferIsCutWhenARESTClientWaits() async throws {
        let bench = Self.slowBoard(holdLimit: 300)
        let server = try bench.server()
        let (socket, _) = try await URBChannelTests.open(server)
        try socket.send(
            URBWire.submit(.control, endpoint: 0, id: 1, length: 2, timeout: 60_000, setup: URBWire.setup(0xc0, 0x30, length: 2)))
        #expect(try await bench.device.waitForHeld(1).count == 1)
        let quick = await Self.restControl(bench, request: 0x01, timeout: 5000)
        #expect(quick.status == 200 && quick.body == [9, 9], "\(String(decoding: quick.body, as: UTF8.self))")
        let cut = try await URBChannelTests.complete(socket)
        #expect(cut.id == 1 && cut.status == 2, "TIMED_OUT: \(cut.status)")
        await server.shutdown()
    }

    @Test func aChannelsControlTransferWhoseTimeoutRunsOutWhileItWaitsIsNeverSent() async throws {
        let bench = Self.slowBoard(holdLimit: 60_000)
        let server = try bench.server()
        let (socket, _) = try await URBChannelTests.open(server)
        let slow = Task { await Self.restControl(bench, request: 0x30, timeout: 60_000) }
        #expect(try await bench.device.waitForHeld(1).count == 1)
        try socket.send(
            URBWire.submit(.control, endpoint: 0, id: 2, length: 2, timeout: 200, setup: URBWire.setup(0xc0, 0x01, length: 2)))
        let done = try await URBChannelTests.complete(socket)
        #expect(done.id == 2 && done.status == 2 && done.actualLength == 0)
        #expect(bench.device.submitted.count == 1, "only REST's slow request reached the device")
        // One that waits and is cancelled completes CANCELLED at once, never sent either.
        try socket.send(
            URBWire.submit(.control, endpoint: 0, id: 3, length: 2, timeout: 10_000, setup: URBWire.setup(0xc0, 0x01, length: 2)))
        try socket.send(URBWire.cancel(id: 3))
        let cancelled = try await URBChannelTests.complete(socket)
        #expect(cancelled.id == 3 && cancelled.status == 3)
        #expect(bench.device.submitted.count == 1)
        slow.cancel()
        _ = await slow.value
        await server.shutdown()
        #expect(bench.budget.inUse == 0)
    }
}

/// The same over the real server (each request a task on the loop, as in the daemon).
@Suite struct ControlFairnessLiveTests {
    @Test func aWaiterOverTheServerIsAnsweredAtItsTimeout() async throws {
        let bench = URBChannelControlTests.slowBoard(holdLimit: 60_000)
        let server = try bench.server()
        let client = TestHTTPClient(port: Int(server.port))
        let slow = Task {
            try await client.request("POST", "/v1/devices/1-2/control?request_type=0xc0&request=0x30&length=2&timeout_ms=60000")
        }
        let held = try await bench.device.waitForHeld(1)
        #expect(held.count == 1)
        let quick = try await client.request("POST", "/v1/devices/1-2/control?request_type=0xc0&request=1&length=2&timeout_ms=300")
        #expect(quick.status == 504 && quick.text.contains("waited"), "\(quick.status) \(quick.text)")
        // The slow one answers (the device completes it): endpoint 0 is free again.
        bench.device.complete(try #require(held.first).id, with: .complete(data: [7, 7]))
        let slowAnswer = try await slow.value
        #expect(slowAnswer.status == 200 && slowAnswer.body == [7, 7], "\(slowAnswer.status)")
        let after = try await client.request("POST", "/v1/devices/1-2/control?request_type=0xc0&request=1&length=2&timeout_ms=300")
        #expect(after.status == 200, "\(after.text)")
        await server.shutdown()
    }
}
