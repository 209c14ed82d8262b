import Foundation
import Testing
import TestSupport

/// The lab's devices as the tests address them, and the calls the transfer tests make.
extension LabSession {
    static let sourceSink = "lab-sourcesink"
    static let loopback = "lab-loopback"
    static let gadget = "lab-ffs"

    /// The id of the device with serial number `serial`.
    func deviceID(serial: String) async throws -> String {
        let result = try await daemon.get("/v1/devices?serial=\(serial)")
        let devices = try #require(try result.object()["devices"] as? [[String: Any]])
        return try #require(devices.first?["id"] as? String, "no device with serial \(serial)")
    }

    /// The id of the first device with these ids.
    func deviceID(vendor: Int, product: Int) async throws -> String {
        let result = try await daemon.get("/v1/devices?vendor_id=\(vendor)&product_id=\(product)")
        let devices = try #require(try result.object()["devices"] as? [[String: Any]])
        return try #require(devices.first?["id"] as? String, "no device \(vendor):\(product)")
    }

    /// The address of the first endpoint of interface 0, alternate setting 0, with this type and direction.
    func endpoint(_ id: String, type: String, direction: String) async throws -> Int {
        let details = try await daemon.get("/v1/devices/\(id)").object()
        let configurations = try #require(details["configurations"] as? [[String: Any]])
        let interfaces = try #require(configurations.first?["interfaces"] as? [[String: Any]])
        let alts = try #require(interfaces.first?["alt_settings"] as? [[String: Any]])
        let endpoints = try #require(alts.first?["endpoints"] as? [[String: Any]])
        let endpoint = try #require(
            endpoints.first { $0["transfer_type"] as? String == type && $0["direction"] as? String == direction },
            "\(id) has no \(type) \(direction) endpoint")
        return try #require(endpoint["address"] as? Int)
    }

    /// The streams the daemon has open now in `direction` ("in" or "out"), from its metrics.
    func openStreams(_ direction: String) async throws -> Int {
        Int(try await metric(["usbhttpd_streams_active{", "direction=\"\(direction)\""]) ?? 0)
    }

    /// The bytes of usbfs memory the daemon's transfers hold now.
    func usbfsBytesInUse() async throws -> Double {
        try await metric(["usbhttpd_usbfs_bytes_in_use"]) ?? 0
    }

    /// Waits (up to 20 s) until the first sample with `parts` satisfies `condition`; true once it does.
    func waitForMetric(_ parts: [String], _ condition: (Double) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if condition(try await metric(parts) ?? 0) { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Waits (up to 20 s) until the daemon has at least `count` streams open in `direction`,
    /// so that a test acts on a stream that runs rather than after a fixed time (a loaded
    /// machine starts one late). True once they are.
    func streamsActive(_ direction: String, atLeast count: Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if try await openStreams(direction) >= count { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// The value of the first sample line of the daemon's /metrics that contains every part
    /// (a metric name with `{`, labels as `name="value"`), nil if none.
    func metric(_ parts: [String], in text: String? = nil) async throws -> Double? {
        var scraped = text
        if scraped == nil { scraped = try await daemon.get("/metrics").text }
        let text = scraped ?? ""
        return text.split(separator: "\n")
            .first { line in !line.hasPrefix("#") && parts.allSatisfy { line.contains($0) } }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    func post(_ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> HTTPResult {
        try await daemon.request("POST", path, body: body ?? [], headers: headers)
    }

    /// Takes a lease on `id` (`query`: ttl_ms, grace_ms, interface): its id and token, and the
    /// whole answer.
    func takeLease(_ id: String, _ query: String) async throws -> (id: String, token: String, answer: [String: Any]) {
        let taken = try await post("/v1/devices/\(id)/leases?\(query)")
        #expect(taken.status == 201, "\(taken.text)")
        let answer = try taken.object()
        return (try #require(answer["id"] as? String), try #require(answer["token"] as? String), answer)
    }

    /// Claims interface 0 of `id` if it is not claimed yet.
    func claimed(_ id: String, interface: Int = 0) async throws {
        let state = try await daemon.get("/v1/devices/\(id)/claims").object()
        let claims = state["claims"] as? [[String: Any]] ?? []
        if claims.contains(where: { $0["interface"] as? Int == interface }) { return }
        let result = try await post("/v1/devices/\(id)/interfaces/\(interface)/claim")
        #expect(result.status == 200, "claim: \(result.text)")
    }

    /// Releases interface `interface` of `id` if it is claimed.
    func released(_ id: String, interface: Int = 0) async throws {
        let state = try await daemon.get("/v1/devices/\(id)/claims").object()
        let claims = state["claims"] as? [[String: Any]] ?? []
        guard claims.contains(where: { $0["interface"] as? Int == interface }) else { return }
        let result = try await daemon.request("DELETE", "/v1/devices/\(id)/interfaces/\(interface)/claim")
        #expect(result.status == 200, "release: \(result.text)")
    }

    /// A vendor control request in plain form.
    func vendor(
        _ id: String, _ direction: String, request: Int, value: Int = 0, index: Int = 0, length: Int? = nil,
        recipient: String = "device", data: [UInt8]? = nil, timeout: Int? = nil
    ) async throws -> HTTPResult {
        var query = "direction=\(direction)&type=vendor&recipient=\(recipient)&request=\(request)&value=\(value)&index=\(index)"
        if let length { query += "&length=\(length)" }
        if let timeout { query += "&timeout_ms=\(timeout)" }
        return try await post("/v1/devices/\(id)/control?\(query)", body: data)
    }

    /// A read of `endpoint` (`query`: its length and timeout) sent on a connection of its own,
    /// returned once the read is in flight (its buffer counted against usbfs), for the test to
    /// hang up or wait on.
    func readInFlight(_ id: String, endpoint: Int, query: String, requestID: String) async throws -> RawConnection {
        let port = try #require(Int(daemon.base.split(separator: ":").last ?? ""))
        let held = try await usbfsBytesInUse()
        let connection = try RawConnection(port: port)
        try connection.send(
            "GET /v1/devices/\(id)/endpoints/\(endpoint)/data?\(query) HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nX-Request-Id: \(requestID)\r\n\r\n")
        #expect(try await waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 > held }, "the read is in flight")
        return connection
    }

    func read(_ id: String, endpoint: Int, length: Int, timeout: Int? = nil) async throws -> HTTPResult {
        var path = "/v1/devices/\(id)/endpoints/\(endpoint)/data?length=\(length)"
        if let timeout { path += "&timeout_ms=\(timeout)" }
        return try await daemon.get(path)
    }

    func write(_ id: String, endpoint: Int, data: [UInt8], query: String = "") async throws -> HTTPResult {
        try await post("/v1/devices/\(id)/endpoints/\(endpoint)/data" + (query.isEmpty ? "" : "?" + query), body: data)
    }
}

/// The FunctionFS gadget's vendor requests (lab/gadget/ffs-gadget.c).
enum Gadget {
    static let info = 0x01, echoSet = 0x02, echoGet = 0x03, outCount = 0x04, refuse = 0x10
    static let interruptQueue = 0x20, halt = 0x21, pauseOut = 0x22, delayed = 0x30
    /// Endpoint files: ep1 interrupt IN, ep2 bulk IN, ep3 bulk OUT.
    static let interruptFile = 1, bulkInFile = 2, bulkOutFile = 3
}

extension HTTPResult {
    /// The JSON body's `actual_length`.
    var actualLength: Int? { (try? object())?["actual_length"] as? Int }

    /// A little-endian integer made of the body's bytes.
    var littleEndian: UInt64 { body.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
}
