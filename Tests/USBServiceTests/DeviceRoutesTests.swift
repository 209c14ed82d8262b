import Foundation
import HTTPServer
import Testing
import TestSupport
import USB
import USBService

/// The device routes, called in-process with a fixed catalog.
@Suite struct DeviceRoutesTests {
    let api = API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard, FakeCatalog.hub]))

    func call(_ path: String, query: [(String, String)] = [], method: String = "GET") async -> HTTPResponse {
        await api.response(
            to: HTTPRequest(method: method, path: path, query: query.map { (name: $0.0, value: $0.1) }))
    }

    func object(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    /// --node-name: every summary says which node it came from (lists, details, waits, events).
    @Test func theNodeNameIsInEverySummary() async throws {
        let catalog = FakeCatalog(list: [FakeCatalog.keyboard])
        catalog.changes.append(.added, FakeCatalog.keyboard)
        let api = API.router(catalog: catalog, node: "bench-7.lab")
        for (path, query) in [("/v1/devices", []), ("/v1/devices/4-1", []), ("/v1/wait", [("id", "4-1")])] {
            let response = await api.response(
                to: HTTPRequest(method: "GET", path: path, query: query.map { (name: $0.0, value: $0.1) }))
            #expect(response.status == 200, "\(path)")
            #expect(String(decoding: response.body, as: UTF8.self).contains("\"node\" : \"bench-7.lab\""), "\(path)")
        }
        let plain = await call("/v1/devices")
        #expect(String(decoding: plain.body, as: UTF8.self).contains("\"node\" : null"), "null without the option")
    }

    @Test func listHasTheSummaryFieldsWithNullsForAbsentStrings() async throws {
        let response = await call("/v1/devices")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json")
        let devices = try #require(try object(response)["devices"] as? [[String: Any]])
        #expect(devices.count == 2)
        let keyboard = devices[0]
        #expect(keyboard["id"] as? String == "4-1")
        #expect(keyboard["bus"] as? Int == 4 && keyboard["address"] as? Int == 2)
        #expect(keyboard["port_path"] as? [Int] == [1])
        #expect(keyboard["speed"] as? String == "full")
        #expect(keyboard["vendor_id"] as? Int == 0x0627 && keyboard["product_id"] as? Int == 1)
        #expect(keyboard["device_class"] is NSNull, "class 0: given per interface")
        #expect(keyboard["device_class_code"] as? Int == 0)
        #expect(keyboard["manufacturer"] as? String == "QEMU")
        #expect(keyboard["serial"] is NSNull)
        let hub = devices[1]
        #expect(hub["id"] as? String == "usb5")
        #expect(hub["device_class"] as? String == "hub")
        #expect(hub["port_path"] as? [Int] == [])
    }

    @Test(arguments: [
        ([("vendor_id", "0x0627")], ["4-1"]),
        ([("vendor_id", "1575"), ("product_id", "1")], ["4-1"]),
        ([("product_id", "3")], ["usb5"]),
        ([("class", "hid")], ["4-1"]),
        ([("class", "3")], ["4-1"]),
        ([("class", "0x09")], ["usb5"]),
        ([("class", "vendor_specific")], []),
        ([("serial", "0000:00:05.0")], ["usb5"]),
        ([("serial", "")], []),
    ])
    func filters(query: [(String, String)], ids: [String]) async throws {
        let response = await call("/v1/devices", query: query)
        #expect(response.status == 200)
        let devices = try #require(try object(response)["devices"] as? [[String: Any]])
        #expect(devices.compactMap { $0["id"] as? String } == ids)
    }

    @Test(arguments: [
        ([("vendor_id", "0x10000")], "invalid-parameter"),
        ([("vendor_id", "-1")], "invalid-parameter"),
        ([("product_id", "abc")], "invalid-parameter"),
        ([("class", "256")], "invalid-parameter"),
        ([("class", "keyboards")], "invalid-parameter"),
        ([("speed", "high")], "unknown-parameter"),
        ([("serial", "a"), ("serial", "b")], "repeated-parameter"),
    ])
    func badFiltersAre400(query: [(String, String)], code: String) async throws {
        let response = await call("/v1/devices", query: query)
        #expect(response.status == 400)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        #expect(try object(response)["code"] as? String == code)
    }

    /// With a current list at hand the list needs no scan (a catalog that would fail one is not
    /// asked), and its JSON is made once per change; filters still apply.
    @Test func aCurrentListIsServedWithoutAScan() async throws {
        var catalog = FakeCatalog(list: [], failure: .io)
        catalog.fresh = (7, [FakeCatalog.keyboard, FakeCatalog.hub])
        let api = API.router(catalog: catalog)
        let first = await api.response(to: HTTPRequest(method: "GET", path: "/v1/devices"))
        let again = await api.response(to: HTTPRequest(method: "GET", path: "/v1/devices"))
        #expect(first.status == 200 && first.body == again.body)
        #expect(try #require(try object(first)["devices"] as? [[String: Any]]).count == 2)
        let filtered = await api.response(
            to: HTTPRequest(method: "GET", path: "/v1/devices", query: [(name: "vendor_id", value: "0x9999")]))
        #expect(try #require(try object(filtered)["devices"] as? [[String: Any]]).isEmpty)
        catalog.fresh = nil
        let scanned = await API.router(catalog: catalog).response(to: HTTPRequest(method: "GET", path: "/v1/devices"))
        #expect(scanned.status == 502, "without a current list, the scan (failing here) answers")
    }

    @Test func detailsCarryTheWholeTree() async throws {
        let response = await call("/v1/devices/4-1")
        #expect(response.status == 200)
        let details = try object(response)
        #expect(details["product"] as? String == "QEMU USB Keyboard", "summary fields are there too")
        #expect(details["active_configuration"] as? Int == 1)
        #expect(details["speed_mbps"] as? Double == 12)
        let descriptor = try #require(details["device_descriptor"] as? [String: Any])
        #expect(descriptor["usb_version"] as? String == "2.00" && descriptor["bcd_usb"] as? Int == 0x200)
        #expect(descriptor["device_version"] as? String == "0.00")
        let config = try #require((details["configurations"] as? [[String: Any]])?.first)
        #expect(config["string"] as? String == "HID Keyboard")
        #expect(config["max_power_ma"] as? Int == 100, "2 mA units below USB 3")
        #expect(config["self_powered"] as? Bool == false && config["remote_wakeup"] as? Bool == true)
        let alt = try #require(
            ((config["interfaces"] as? [[String: Any]])?.first?["alt_settings"] as? [[String: Any]])?.first)
        #expect(alt["interface_class_name"] as? String == "hid")
        #expect(alt["string"] is NSNull)
        #expect(alt["extra"] as? String == "09211101")
        let endpoint = try #require((alt["endpoints"] as? [[String: Any]])?.first)
        #expect(endpoint["direction"] as? String == "in" && endpoint["transfer_type"] as? String == "interrupt")
        #expect(endpoint["max_packet_size"] as? Int == 8 && endpoint["interval"] as? Int == 7)
    }

    @Test func superSpeedPowerIsIn8mAUnits() async throws {
        let details = try object(await call("/v1/devices/usb5"))
        let config = try #require((details["configurations"] as? [[String: Any]])?.first)
        #expect(config["max_power_ma"] as? Int == 0)
        #expect(details["speed"] as? String == "super")
    }

    @Test func rawDescriptorsAreOctets() async {
        let response = await call("/v1/devices/4-1/descriptors/raw")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/octet-stream")
        #expect(response.body == [0x12, 0x01, 0x00, 0x02])
        #expect(response.headers["X-USB-Configuration"] == "1", "the active configuration, for libusb's backend")
    }

    @Test(arguments: [
        ("/v1/devices/9-9", 404, "device-not-found"),
        ("/v1/devices/usb7", 404, "device-not-found"),
        ("/v1/devices/9-9/descriptors/raw", 404, "device-not-found"),
        ("/v1/devices/1-", 400, "invalid-device-id"),
        ("/v1/devices/1-2..3", 400, "invalid-device-id"),
        ("/v1/devices/1234-1", 400, "invalid-device-id"),
        ("/v1/devices/usb", 400, "invalid-device-id"),
        ("/v1/devices/1-1.2.3.4.5.6.7.8", 400, "invalid-device-id"),
        ("/v1/devices/..%2F", 400, "invalid-device-id"),
        // Numbers the kernel never writes: no bus or port 0, none over 255, no leading zero.
        ("/v1/devices/1-0", 400, "invalid-device-id"),
        ("/v1/devices/0-1", 400, "invalid-device-id"),
        ("/v1/devices/usb0", 400, "invalid-device-id"),
        ("/v1/devices/256-1", 400, "invalid-device-id"),
        ("/v1/devices/1-01", 400, "invalid-device-id"),
        ("/v1/devices/1-1/descriptors/raw", 404, "device-not-found"),
    ])
    func badIDs(path: String, status: Int, code: String) async throws {
        let response = await call(path)
        #expect(response.status == status)
        #expect(try object(response)["code"] as? String == code)
    }

    @Test(arguments: [
        (USBError.access, 503, "usb-access-denied"),
        (USBError.noDevice, 410, "device-gone"),
        (USBError.busy, 409, "device-busy"),
        (USBError.timeout, 504, "usb-timeout"),
        (USBError.io, 502, "usb-error"),
        (USBError.pipe, 409, "usb-stall"),
        (USBError.notFound, 410, "device-gone"),
        (USBError.invalidParameter, 400, "usb-invalid-parameter"),
        (USBError.notSupported, 400, "usb-not-supported"),
    ])
    func libusbErrorsBecomeProblems(error: USBError, status: Int, code: String) async throws {
        let failing = API.router(catalog: FakeCatalog(list: [], failure: error))
        for path in ["/v1/devices", "/v1/devices/1-1", "/v1/devices/1-1/descriptors/raw"] {
            let response = await failing.response(to: HTTPRequest(method: "GET", path: path))
            #expect(response.status == status, "\(path)")
            let problem = try object(response)
            #expect(problem["code"] as? String == code)
            #expect((problem["detail"] as? String)?.contains(error.name) == true)
        }
    }
}
