import HTTPRouting
import HTTPServer
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// `timeout_ms=0` (libusb's "no timeout") waits at most the operator's --max-timeout-ms unless
/// --allow-unbounded-timeouts: one client's forgotten read holds no endpoint and no usbfs
/// memory for ever. The URB channel's SUBMIT with timeout 0 the same.
@Suite struct UnboundedTimeoutTests {
    static func read(_ api: Router, timeout: String) async -> HTTPResponse {
        var request = HTTPRequest(
            method: "GET", path: "/v1/devices/1-2/endpoints/0x81/data",
            query: [(name: "length", value: "64"), (name: "timeout_ms", value: timeout)], headers: [:], body: [])
        request.remoteAddress = "127.0.0.1"
        return await api.response(to: request)
    }

    static func claim(_ api: Router) async {
        var request = HTTPRequest(method: "POST", path: "/v1/devices/1-2/interfaces/0/claim", query: [], headers: [:], body: [])
        request.remoteAddress = "127.0.0.1"
        #expect(await api.response(to: request).status == 200)
    }

    @Test func noTimeoutIsTheOperatorsLongest() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold(partial: [9]) : .complete() }
        var limits = TransferLimits()
        limits.maxTimeoutMs = 300
        let api = bench.api(limits: limits)
        await Self.claim(api)
        let answer = await Self.read(api, timeout: "0")
        #expect(bench.device.submitted.last?.timeout == 300, "the URB carries the operator's longest")
        #expect(answer.headers["X-USB-Transfer-Status"] == "timed_out", "\(answer.status)")
    }

    @Test func theOperatorMayAllowNone() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        var limits = TransferLimits()
        limits.maxTimeoutMs = 300
        limits.allowUnboundedTimeouts = true
        let api = bench.api(limits: limits)
        await Self.claim(api)
        let request = Task { await Self.read(api, timeout: "0") }
        let held = try await bench.device.waitForHeld(1)
        #expect(held.first?.timeout == 0, "no timeout at all")
        request.cancel()
        _ = await request.value
        #expect(await eventually { await bench.device.heldURBs().isEmpty }, "a hang-up still ends it")
    }

    @Test func aChannelsSubmitWithoutTimeoutGetsTheLongestToo() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold() : .complete() }
        var limits = TransferLimits()
        limits.maxTimeoutMs = 300
        let server = try bench.server(limits: limits)
        let (socket, hello) = try await URBChannelTests.open(server)
        #expect(hello.maxTimeout == 300)
        try await URBChannelTests.claim(socket)
        try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: 7, length: 512))
        let done = try await URBChannelTests.complete(socket)
        #expect(done.id == 7 && done.status == URBWire.Status.timedOut.code)
        await server.shutdown()
    }
}
