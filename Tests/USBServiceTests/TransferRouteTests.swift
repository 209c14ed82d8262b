import Foundation
import HTTPRouting
import HTTPServer
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// The transfer routes (control, bulk and interrupt reads and writes, claims, halts, resets)
/// run in-process over a scripted device (``FakeBench``): what each route submits, and what it
/// answers for each way a transfer can end. No USB here; the lab checks the real thing.
@Suite struct TransferRouteTests {
    static let id = "1-2"

    func call(
        _ api: Router, _ method: String, _ path: String, _ query: [(String, String)] = [], body: [UInt8] = [],
        headers: HTTPHeaders = [:]
    ) async -> HTTPResponse {
        var request = HTTPRequest(
            method: method, path: "/v1/devices/\(Self.id)" + path, query: query.map { (name: $0.0, value: $0.1) },
            headers: headers, body: body)
        request.remoteAddress = "127.0.0.1"
        return await api.response(to: request)
    }

    func claim(_ api: Router, _ interface: Int = 0) async throws {
        let claimed = await call(api, "POST", "/interfaces/\(interface)/claim")
        #expect(claimed.status == 200, "\(String(decoding: claimed.body, as: UTF8.self))")
    }

    @Test func aControlReadSubmitsItsSetupAndAnswersTheDevicesBytes() async throws {
        let bench = FakeBench { urb in .complete(data: [1, 2, 3, 4, 5]) }
        let api = bench.api()
        let answer = await call(
            api, "POST", "/control", [("direction", "in"), ("type", "vendor"), ("request", "0x5c"), ("value", "7"),
                                      ("index", "0x100"), ("length", "64")])
        #expect(answer.status == 200)
        #expect(answer.body == [1, 2, 3, 4, 5])
        #expect(answer.headers["X-USB-Actual-Length"] == "5" && answer.headers["X-USB-Transfer-Status"] == "completed")
        let urb = try #require(bench.device.submitted.last)
        #expect(urb.type == .control && urb.endpoint == 0x80 && urb.length == 8 + 64)
        #expect(urb.setup == ControlSetup(direction: .in, kind: .vendor, recipient: .device, request: 0x5c, value: 7, index: 0x100, length: 64))
        #expect(bench.budget.inUse == 0, "the URB's bytes are back")
    }

    @Test func aControlWriteCarriesItsDataStage() async throws {
        let bench = FakeBench()
        let answer = await call(
            bench.api(), "POST", "/control", [("request_type", "0x40"), ("request", "0x5b")], body: [9, 8, 7])
        #expect(answer.status == 200)
        #expect(try object(answer)["actual_length"] as? Int == 3)
        let urb = try #require(bench.device.submitted.last)
        #expect(urb.data == [9, 8, 7] && urb.setup?.length == 3 && urb.setup?.direction == .out)
    }

    @Test(arguments: [
        (TransferStatus.stall, 409, "usb-stall"), (.timedOut, 504, "usb-timeout"), (.noDevice, 410, "device-gone"),
        (.overflow, 502, "usb-overflow"), (.error, 502, "usb-transfer-error"),
    ])
    func aControlTransferThatDoesNotCompleteIsItsProblem(status: TransferStatus, http: Int, code: String) async throws {
        let bench = FakeBench { _ in .complete(status, data: []) }
        let answer = await call(bench.api(), "POST", "/control", [("request_type", "0xc0"), ("request", "1"), ("length", "8")])
        #expect(problemMismatch(answer, status: http, code: code) == nil)
        #expect(answer.headers["X-USB-Transfer-Status"] == status.rawValue)
    }

    @Test func aReadOfAnUnclaimedInterfaceSubmitsNothing() async throws {
        let bench = FakeBench()
        let answer = await call(bench.api(), "GET", "/endpoints/0x81/data", [("length", "64")])
        #expect(problemMismatch(answer, status: 409, code: "interface-not-claimed") == nil)
        #expect(bench.device.submitted.isEmpty)
    }

    @Test func aShortReadAsksForWholePacketsAndKeepsTheRestForTheNextRead() async throws {
        let bench = FakeBench { urb in .complete(data: Array(0..<200).map(UInt8.init)) }
        let api = bench.api()
        try await claim(api)
        let first = await call(api, "GET", "/endpoints/0x81/data", [("length", "100")])
        #expect(first.status == 200 && first.body == Array(0..<100).map(UInt8.init))
        #expect(bench.device.submitted.last?.length == 512, "a whole packet, so a full one cannot overflow")
        let urbs = bench.device.submitted.count
        let second = await call(api, "GET", "/endpoints/0x81/data", [("length", "500")])
        #expect(second.body == Array(100..<200).map(UInt8.init), "the kept bytes, without a URB")
        #expect(bench.device.submitted.count == urbs)
    }

    @Test func bytesOfAReadThatTimedOutWaitForTheNextRead() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x83 ? .hold(partial: [7, 7, 7]) : .complete() }
        let api = bench.api()
        try await claim(api)
        let timedOut = await call(api, "GET", "/endpoints/0x83/data", [("length", "64"), ("timeout_ms", "30")])
        #expect(problemMismatch(timedOut, status: 504, code: "usb-timeout") == nil)
        #expect(timedOut.headers["X-USB-Actual-Length"] == "3")
        #expect(String(decoding: timedOut.body, as: UTF8.self).contains("kept for the next read"))
        bench.script { _ in .complete(data: [1]) }
        let next = await call(api, "GET", "/endpoints/0x83/data", [("length", "64")])
        #expect(next.body == [7, 7, 7])
    }

    @Test func aClientThatGoesAwayCancelsItsTransferAndItsBytesAreKept() async throws {
        let bench = FakeBench { urb in urb.endpoint == 0x81 ? .hold(partial: [5, 6]) : .complete() }
        let api = bench.api()
        try await claim(api)
        let request = Task { await call(api, "GET", "/endpoints/0x81/data", [("length", "64"), ("timeout_ms", "0")]) }
        #expect(try await bench.device.waitForHeld(1).count == 1)
        #expect(bench.budget.inUse == 512)
        request.cancel()
        let answer = await request.value
        #expect(answer.status == 503 && answer.headers["X-USB-Transfer-Status"] == "cancelled")
        #expect(try await bench.device.heldURBs().isEmpty)
        #expect(bench.budget.inUse == 0)
        bench.script { _ in .complete() }
        let next = await call(api, "GET", "/endpoints/0x81/data", [("length", "64")])
        #expect(next.body == [5, 6])
    }

    @Test func aWriteWithZLPAsksForTheZeroPacket() async throws {
        let bench = FakeBench()
        let api = bench.api()
        try await claim(api)
        let data = [UInt8](repeating: 0x55, count: 1024)
        let answer = await call(api, "POST", "/endpoints/0x02/data", [("zlp", "true")], body: data)
        #expect(answer.status == 200)
        let urb = try #require(bench.device.submitted.last)
        #expect(urb.data == data && urb.flags.contains(.zeroPacket) && urb.type == .bulk)
    }

    @Test func aDeviceUnpluggedDuringATransferAnswersGoneAndRefusesWhatFollows() async throws {
        let bench = FakeBench { _ in .hold() }
        let api = bench.api()
        try await claim(api)
        let request = Task { await call(api, "GET", "/endpoints/0x81/data", [("length", "64")]) }
        _ = try await bench.device.waitForHeld(1)
        bench.device.unplug()
        let answer = await request.value
        #expect(problemMismatch(answer, status: 410, code: "device-gone") == nil)
        let after = await call(api, "GET", "/endpoints/0x81/data", [("length", "64")])
        #expect(after.status == 410 || after.status == 404, "\(after.status)")
        #expect(bench.budget.inUse == 0)
    }

    @Test func aTransferPastTheUsbfsShareIsRefusedBeforeAnyURB() async throws {
        let bench = FakeBench(budget: UsbfsBudget(limit: 1024))
        let api = bench.api()
        try await claim(api)
        let answer = await call(api, "GET", "/endpoints/0x81/data", [("length", "4096")])
        #expect(problemMismatch(answer, status: 503, code: "usbfs-budget-exhausted") == nil)
        #expect(bench.device.submitted.isEmpty)
    }

    @Test func claimsSettingsHaltsAndResetsReachTheDevice() async throws {
        let bench = FakeBench()
        let api = bench.api()
        bench.device.bindDriver(0)
        let kept = await call(api, "POST", "/interfaces/0/claim", [("detach", "false")])
        #expect(kept.status == 409, "a bound driver is left alone")
        try await claim(api)
        try await claim(api, 1)
        #expect((await call(api, "PUT", "/interfaces/1/alt-setting", [("value", "1")])).status == 200)
        #expect((await call(api, "POST", "/endpoints/0x81/clear-halt")).status == 200)
        #expect((await call(api, "POST", "/reset")).status == 200)
        #expect((await call(api, "DELETE", "/interfaces/0/claim")).status == 200)
        let state = try object(await call(api, "GET", "/claims"))
        #expect((state["claims"] as? [[String: Any]])?.compactMap { $0["interface"] as? Int } == [1])
        #expect(
            bench.device.calls == [
                "kernel-driver-active 0", "kernel-driver-active 0", "claim 0", "kernel-driver-active 1", "claim 1",
                "alt-setting 1 1", "clear-halt 129", "reset", "release 0",
            ])
    }

    @Test func aControlRequestToAnInterfaceNobodyClaimedClaimsItFirst() async throws {
        let bench = FakeBench { _ in .complete(data: [1]) }
        let api = bench.api()
        let answer = await call(
            api, "POST", "/control", [("direction", "in"), ("type", "class"), ("recipient", "interface"), ("request", "1"),
                                      ("index", "0"), ("length", "1")])
        #expect(answer.status == 200)
        #expect(bench.device.calls == ["kernel-driver-active 0", "claim 0"])
        #expect(bench.device.submitted.count == 1)
        let state = try object(await call(api, "GET", "/claims"))
        #expect((state["claims"] as? [[String: Any]])?.compactMap { $0["interface"] as? Int } == [0])
    }

    @Test func aRefusedSubmissionIsTheLibusbError() async throws {
        let bench = FakeBench { _ in .refuse(.pipe) }
        let answer = await call(bench.api(), "POST", "/control", [("request_type", "0xc0"), ("request", "1"), ("length", "8")])
        #expect(answer.status >= 400 && answer.status < 600)
        #expect(String(decoding: answer.body, as: UTF8.self).contains("LIBUSB_ERROR_PIPE"))
        #expect(bench.budget.inUse == 0)
    }

    func object(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }
}
