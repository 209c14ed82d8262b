import Foundation
import HTTPServer
import Testing
import USB
import USBService

/// Transfer requests checked before any device is looked up: every mistake is a 4xx
/// problem naming it. (With no session in the fake catalog, a request that passes every
/// check answers 404 device-not-found; the transfers themselves are tested in the lab.)
@Suite struct TransferRequestTests {
    let api = API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard]))

    func call(
        _ method: String, _ path: String, _ query: [(String, String)] = [], body: [UInt8] = [],
        headers: HTTPHeaders = [:]
    ) async -> HTTPResponse {
        await api.response(
            to: HTTPRequest(
                method: method, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: headers,
                body: body))
    }

    func code(_ response: HTTPResponse) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return object?["code"] as? String
    }

    static let control = "/v1/devices/4-1/control"

    static let plainCases: [([(String, String)], Int, String)] = [
        ([("type", "vendor"), ("request", "1"), ("length", "4")], 400, "missing-parameter"),
        ([("direction", "in"), ("request", "1"), ("length", "4")], 400, "missing-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("length", "4")], 400, "missing-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1")], 400, "missing-parameter"),
        ([("direction", "sideways"), ("type", "vendor"), ("request", "1"), ("length", "4")], 400, "invalid-parameter"),
        ([("direction", "in"), ("type", "reserved"), ("request", "1"), ("length", "4")], 400, "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("recipient", "bus"), ("request", "1"), ("length", "4")], 400,
         "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "256"), ("length", "4")], 400, "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1"), ("value", "65536"), ("length", "4")], 400,
         "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1"), ("index", "-1"), ("length", "4")], 400,
         "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1"), ("length", "4097")], 400, "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1"), ("length", "4"), ("timeout_ms", "-1")], 400,
         "invalid-parameter"),
        ([("direction", "in"), ("type", "vendor"), ("request", "1"), ("length", "4"), ("timeout_ms", "600001")], 400,
         "invalid-parameter"),
        ([("request_type", "0xc0"), ("direction", "in"), ("request", "1"), ("length", "4")], 400,
         "conflicting-parameters"),
        ([("request_type", "0xc4"), ("request", "1"), ("length", "4")], 400, "invalid-parameter"),
        ([("request_type", "0xc0"), ("request", "1"), ("length", "4"), ("data", "x")], 400, "unknown-parameter"),
        ([("direction", "out"), ("type", "standard"), ("request", "9"), ("value", "1")], 400, "use-dedicated-route"),
        ([("request_type", "0x01"), ("request", "11"), ("value", "1")], 400, "use-dedicated-route"),
        // Every form of the state changes: another recipient, the IN direction.
        ([("request_type", "0x80"), ("request", "9"), ("value", "1"), ("length", "1")], 400, "use-dedicated-route"),
        ([("request_type", "0x02"), ("request", "9"), ("value", "1")], 400, "use-dedicated-route"),
        ([("request_type", "0x00"), ("request", "5"), ("value", "42")], 400, "request-refused"),
        ([("request_type", "0x00"), ("request", "3"), ("value", "2"), ("index", "0x0400")], 400, "request-refused"),
        // Other features are fine (remote wake-up), as are class requests numbered like them.
        ([("request_type", "0x00"), ("request", "3"), ("value", "1")], 404, "device-not-found"),
        ([("request_type", "0x21"), ("request", "9"), ("value", "0x0200")], 404, "device-not-found"),
        // Everything right: the fake has no session, so the device is not found.
        ([("request_type", "0xc0"), ("request", "1"), ("length", "4")], 404, "device-not-found"),
        ([("direction", "IN"), ("type", "Vendor"), ("recipient", "interface"), ("request", "0x5c"), ("length", "4")],
         404, "device-not-found"),
    ]

    @Test(arguments: plainCases)
    func plainControlRequests(query: [(String, String)], status: Int, code expected: String) async {
        let response = await call("POST", Self.control, query)
        #expect(response.status == status, "\(query)")
        #expect(code(response) == expected, "\(query): \(String(decoding: response.body, as: UTF8.self))")
        #expect(response.headers["Content-Type"] == (status == 200 ? nil : "application/problem+json"))
    }

    @Test func outDataMustFitTheRequest() async {
        let base = [("direction", "out"), ("type", "vendor"), ("request", "2")]
        #expect(code(await call("POST", Self.control, base + [("length", "3")], body: [1, 2])) == "length-mismatch")
        let tooMuch = await call("POST", Self.control, base, body: [UInt8](repeating: 0, count: 4097))
        #expect(tooMuch.status == 413 && code(tooMuch) == "control-data-too-large")
        let inWithData = await call(
            "POST", Self.control, [("direction", "in"), ("type", "vendor"), ("request", "3"), ("length", "2")],
            body: [1])
        #expect(inWithData.status == 400 && code(inWithData) == "unexpected-data")
        #expect(code(await call("POST", Self.control, base, body: [UInt8](repeating: 0, count: 4096))) == "device-not-found")
    }

    static let json: HTTPHeaders = ["Content-Type": "application/json"]

    static let jsonCases: [(String, Int, String)] = [
        (#"{"direction":"in","type":"vendor","request":1,"length":4}"#, 404, "device-not-found"),
        (#"{"request_type":64,"request":2,"data_hex":"0A0b"}"#, 404, "device-not-found"),
        (#"{"request_type":64,"request":2,"data_base64":"AQID"}"#, 404, "device-not-found"),
        (#"{"request_type":64,"request":2,"data_hex":"abc"}"#, 400, "invalid-parameter"),
        (#"{"request_type":64,"request":2,"data_hex":"zz"}"#, 400, "invalid-parameter"),
        (#"{"request_type":64,"request":2,"data_base64":"***"}"#, 400, "invalid-parameter"),
        (#"{"request_type":64,"request":2,"data_hex":"00","data_base64":"AA=="}"#, 400, "conflicting-parameters"),
        (#"{"request_type":64,"request":2,"data_hex":"0001","length":3}"#, 400, "length-mismatch"),
        (#"{"request_type":192,"request":2,"length":2,"data_hex":"00"}"#, 400, "unexpected-data"),
        (#"{"request_type":192,"request":2,"lenght":2}"#, 400, "unknown-parameter"),
        (#"{"request_type":192,"request":2,"length":2.5}"#, 400, "invalid-json"),
        (#"{"request_type":192,"request":{"a":1},"length":2}"#, 400, "invalid-json"),
        (#"[1,2]"#, 400, "invalid-json"),
        (#"{"request_type":192,"#, 400, "invalid-json"),
        (#""#, 400, "invalid-json"),
    ]

    @Test(arguments: jsonCases)
    func jsonControlRequests(body: String, status: Int, code expected: String) async {
        let response = await call("POST", Self.control, body: Array(body.utf8), headers: Self.json)
        #expect(response.status == status, "\(body)")
        #expect(code(response) == expected, "\(body): \(String(decoding: response.body, as: UTF8.self))")
    }

    @Test func jsonControlRequestsTakeNoQuery() async {
        let response = await call(
            "POST", Self.control, [("timeout_ms", "5")], body: Array(#"{"request_type":192,"request":1,"length":1}"#.utf8),
            headers: Self.json)
        #expect(response.status == 400 && code(response) == "unknown-parameter")
    }

    static let otherCases: [(String, String, [(String, String)], Int, String)] = [
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "64"), ("timeout_ms", "10")], 404, "device-not-found"),
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "64"), ("timeout_ms", "0")], 404, "device-not-found"),
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "64"), ("timeout_ms", "-1")], 400, "invalid-parameter"),
        ("POST", "/v1/devices/4-1/interfaces/0/claim", [("detach", "maybe")], 400, "invalid-parameter"),
        ("POST", "/v1/devices/4-1/interfaces/0/claim", [("detach", "false")], 404, "device-not-found"),
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [], 400, "missing-parameter"),
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "1048577")], 400, "invalid-parameter"),
        ("GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "8"), ("zlp", "true")], 400, "unknown-parameter"),
        ("GET", "/v1/devices/4-1/endpoints/0x181/data", [("length", "8")], 400, "invalid-parameter"),
        ("GET", "/v1/devices/4-1/endpoints/ep1/data", [("length", "8")], 400, "invalid-parameter"),
        ("POST", "/v1/devices/4-1/endpoints/2/data", [("zlp", "maybe")], 400, "invalid-parameter"),
        ("POST", "/v1/devices/4-1/endpoints/2/data", [("zlp", "true"), ("timeout_ms", "100")], 404, "device-not-found"),
        ("POST", "/v1/devices/4-1/endpoints/2/data", [("length", "1")], 400, "unknown-parameter"),
        ("POST", "/v1/devices/4-1/endpoints/0x81/clear-halt", [("now", "1")], 400, "unknown-parameter"),
        ("POST", "/v1/devices/4-1/interfaces/x/claim", [], 400, "invalid-parameter"),
        ("POST", "/v1/devices/4-1/interfaces/256/claim", [], 400, "invalid-parameter"),
        ("DELETE", "/v1/devices/4-1/interfaces/0/claim", [], 404, "device-not-found"),
        ("PUT", "/v1/devices/4-1/interfaces/0/alt-setting", [], 400, "missing-parameter"),
        ("PUT", "/v1/devices/4-1/interfaces/0/alt-setting", [("value", "1"), ("value", "2")], 400, "repeated-parameter"),
        ("PUT", "/v1/devices/4-1/configuration", [("value", "300")], 400, "invalid-parameter"),
        ("PUT", "/v1/devices/4-1/configuration", [("value", "1")], 404, "device-not-found"),
        ("POST", "/v1/devices/4-1/reset", [("hard", "1")], 400, "unknown-parameter"),
        ("GET", "/v1/devices/4-1/claims", [], 404, "device-not-found"),
        ("POST", "/v1/devices/9-9/control", [("request_type", "0xc0"), ("request", "1"), ("length", "1")], 404,
         "device-not-found"),
        ("POST", "/v1/devices/bad/control", [("request_type", "0xc0"), ("request", "1"), ("length", "1")], 400,
         "invalid-device-id"),
    ]

    @Test(arguments: otherCases)
    func otherRoutesCheckTheirParameters(
        method: String, path: String, query: [(String, String)], status: Int, code expected: String
    ) async {
        let response = await call(method, path, query)
        #expect(response.status == status, "\(method) \(path) \(query)")
        #expect(code(response) == expected, "\(path): \(String(decoding: response.body, as: UTF8.self))")
    }

    /// `X-USB-Device-Address` names the instance of the device meant; one that is no address is
    /// refused before the device is looked up (a stale one is a lab test: it needs a device).
    @Test(arguments: ["0", "128", "abc", "-1", "017x", "", "+5", " 5"])
    func aBadDeviceAddressIsRefused(value: String) async {
        let response = await call(
            "GET", "/v1/devices/4-1/endpoints/0x81/data", [("length", "8")], headers: ["X-USB-Device-Address": value])
        #expect(response.status == 400 && code(response) == "invalid-header", "\(value): \(response.status)")
    }
}
