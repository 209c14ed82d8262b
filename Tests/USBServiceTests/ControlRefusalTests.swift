import Foundation
import HTTPRouting
import HTTPServer
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// No control request reaches what the policy protects, in any encoding, and the requests the
/// daemon refuses are refused in every form (REST and the URB channel share the check:
/// `RouteContext.checkControl`). Over the scripted device: a refused request submits nothing.
@Suite struct ControlRefusalTests {
    /// The keyboard shown by a rule that names its vendor but not HID: its interface protected.
    static let policy = DevicePolicy(rules: [try! DevicePolicy.Rule(parsing: "allow vendor_id=0x0627")])

    func control(
        _ bench: FakeBench, _ id: String, _ query: [(String, String)], body: [UInt8] = [], policy: DevicePolicy = Self.policy
    ) async -> HTTPResponse {
        var request = HTTPRequest(
            method: "POST", path: "/v1/devices/\(id)/control", query: query.map { (name: $0.0, value: $0.1) },
            headers: [:], body: body)
        request.remoteAddress = "127.0.0.1"
        return await bench.api(policy: policy).response(to: request)
    }

    static func code(_ response: HTTPResponse) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["code"] as? String
    }

    @Test(arguments: [
        // bmRequestType, bRequest, wValue, wIndex, wLength (IN when bit 7)
        // Class and vendor requests, to every recipient and index, OUT and IN.
        ([0x21, 0x0a, 0, 0, 0], "interface-protected"),       // SET_IDLE to the interface
        ([0x21, 0x09, 0x0200, 0x0100, 1], "interface-protected"),  // SET_REPORT, wIndex's high byte set
        ([0x40, 0x01, 0, 0, 0], "interface-protected"),       // vendor, to the device
        ([0xc0, 0x01, 0, 0, 4], "interface-protected"),       // vendor IN, to the device
        ([0x42, 0x01, 0, 0x00, 0], "interface-protected"),    // vendor, to endpoint 0 (no interface's)
        ([0x42, 0x01, 0, 0x05, 0], "interface-protected"),    // vendor, to an endpoint nobody has
        ([0x42, 0x01, 0, 0x81, 0], "interface-protected"),    // vendor, to the keyboard's endpoint
        ([0x43, 0x01, 0, 0, 0], "interface-protected"),       // vendor, recipient "other"
        ([0x00, 0x01, 1, 0, 0], "interface-protected"),       // CLEAR_FEATURE(remote wake-up): a change
        // Refused in every form, whatever the device.
        ([0x60, 0x01, 0, 0, 0], "request-refused"),           // the reserved type
        ([0xe0, 0x06, 0x0100, 0, 18], "request-refused"),     // the reserved type, IN
        ([0x00, 0x07, 0x0100, 0, 0], "request-refused"),      // SET_DESCRIPTOR
        ([0x01, 0x03, 2, 0, 0], "request-refused"),           // SET_FEATURE(TEST_MODE) to an interface
        ([0x02, 0x03, 2, 0x81, 0], "request-refused"),        // … to an endpoint
    ])
    func aRequestToAProtectedDeviceIsRefusedAndNothingIsSubmitted(setup: [Int], expected: String) async throws {
        let bench = FakeBench([FakeCatalog.keyboard])
        let query: [(String, String)] = [
            ("request_type", String(setup[0])), ("request", String(setup[1])), ("value", String(setup[2])),
            ("index", String(setup[3])),
        ] + (setup[0] & 0x80 != 0 ? [("length", String(setup[4]))] : [])
        let answer = await control(bench, FakeCatalog.keyboard.id, query, body: setup[0] & 0x80 == 0 ? [UInt8](repeating: 0, count: setup[4]) : [])
        #expect(answer.status == (expected == "request-refused" ? 400 : 403), "\(setup)")
        #expect(Self.code(answer) == expected, "\(setup): \(String(decoding: answer.body, as: UTF8.self))")
        #expect(bench.device.submitted.isEmpty, "nothing reached the device")
    }

    /// A rule that opens one vendor's HID interfaces does not open another vendor's keyboard.
    @Test func aRuleForAnotherVendorsHIDOpensNothingHere() async throws {
        let policy = DevicePolicy(rules: [
            try DevicePolicy.Rule(parsing: "allow vendor_id=0x1209,interface_class=hid"),
            try DevicePolicy.Rule(parsing: "allow vendor_id=0x0627"),
        ])
        let bench = FakeBench([FakeCatalog.keyboard])
        let answer = await control(
            bench, FakeCatalog.keyboard.id, [("request_type", "0x21"), ("request", "0x0a"), ("value", "0")], policy: policy)
        #expect(answer.status == 403 && Self.code(answer) == "interface-protected", "\(String(decoding: answer.body, as: UTF8.self))")
        #expect(bench.device.submitted.isEmpty)
    }

    @Test func standardReadsOfAProtectedDeviceStillWork() async throws {
        let bench = FakeBench([FakeCatalog.keyboard]) { _ in .complete(data: [0x12, 0x01]) }
        let answer = await control(
            bench, FakeCatalog.keyboard.id,
            [("request_type", "0x80"), ("request", "6"), ("value", "0x0100"), ("length", "18")])
        #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
        #expect(bench.device.submitted.count == 1)
    }
}

/// Issue 24, class 1: a reset (or a port request) drops every device behind the device it
/// names: none of them may be one the policy hides, or another client's under a lease.
@Suite struct ResetBehindTests {
    @Test func aResetThatWouldDropAHiddenDeviceBehindItIsRefused() async throws {
        let bench = FakeBench()
        var catalog = bench.catalog
        catalog.behind = ["1-2": [(id: "1-2.1", shown: true), (id: "1-2.2", shown: false)]]
        let api = API.router(catalog: catalog)
        var request = HTTPRequest(method: "POST", path: "/v1/devices/1-2/reset", headers: [:])
        request.remoteAddress = "127.0.0.1"
        let answer = await api.response(to: request)
        #expect(problemMismatch(answer, status: 403, code: "interface-protected") == nil, "\(String(decoding: answer.body, as: UTF8.self))")
        #expect(String(decoding: answer.body, as: UTF8.self).contains("1-2.2"))
        #expect(!bench.device.calls.contains("reset"), "nothing was reset")
        // With every device behind it shown, the reset goes through.
        catalog.behind = ["1-2": [(id: "1-2.1", shown: true)]]
        let allowed = await API.router(catalog: catalog).response(to: request)
        #expect(allowed.status == 200, "\(String(decoding: allowed.body, as: UTF8.self))")
        #expect(bench.device.calls.contains("reset"))
    }
}
