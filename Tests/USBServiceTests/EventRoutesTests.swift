import Foundation
import HTTPServer
import Testing
import TestSupport
import Synchronization
import USB

@testable import USBService

/// `/v1/events`, `/v1/wait` and device ids by serial, in-process on a fixed catalog whose
/// change log the tests write.
@Suite struct EventRoutesTests {
    static let keyboard = FakeCatalog.keyboard
    static let hub = FakeCatalog.hub

    func call(
        _ api: some HTTPResponder, _ path: String, method: String = "GET", query: [(String, String)] = [],
        headers: HTTPHeaders = [:]
    ) async -> HTTPResponse {
        await api.response(
            to: HTTPRequest(method: method, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: headers))
    }

    @Test func theFeedWritesServerSentEvents() {
        let log = ChangeLog(instance: "cafe")
        let change = log.append(.added, Self.keyboard)
        var feed = EventFeed(instance: "cafe", filter: DeviceFilter(), cursor: 0, retry: nil)
        feed.take([change])
        let text = String(decoding: feed.pending, as: UTF8.self)
        #expect(text.hasPrefix("id: cafe-1\nevent: added\ndata: {\"device\":{"))
        #expect(text.hasSuffix("}\n\n"))
        #expect(text.filter { $0 == "\n" }.count == 4, "data is one line")
        #expect(text.contains("\"id\":\"4-1\"") && text.contains("\"sequence\":1") && text.contains("\"type\":\"added\""))
        #expect(feed.cursor == 1)
    }

    @Test func eventsSayWhichNodeTheyCameFrom() {
        var feed = EventFeed(instance: "cafe", filter: DeviceFilter(), cursor: 0, retry: nil, node: "bench-7")
        feed.present(latest: 3, devices: [Self.keyboard])
        #expect(String(decoding: feed.pending, as: UTF8.self).contains("\"node\":\"bench-7\""))
    }

    @Test func eventIDs() {
        #expect(EventID("cafe-12") == EventID(instance: "cafe", sequence: 12))
        #expect(EventID("a-b-3")?.instance == "a-b")
        for bad in ["", "12", "-3", "cafe-", "cafe-x"] { #expect(EventID(bad) == nil, "\(bad)") }
    }

    @Test func theStreamSendsChangesAsTheyComeFilteredAndKeepsAlive() async throws {
        let catalog = FakeCatalog(list: [Self.hub])
        catalog.changes.append(.added, Self.hub)
        let api = API.router(catalog: catalog)
        let response = await call(api, "/v1/events", query: [("class", "hid"), ("keepalive_ms", "100")])
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "text/event-stream")
        #expect(response.headers["Cache-Control"] == "no-cache")
        let stream = try #require(response.stream)
        let woken = WakeCounter()
        stream.start { woken.wake() }
        defer { stream.close() }
        #expect(drain(stream) == "retry: 1000\n\n", "no history without Last-Event-ID")

        catalog.changes.append(.removed, Self.hub)
        catalog.changes.append(.added, Self.keyboard)
        #expect(woken.count == 2)
        let text = drain(stream)
        #expect(!text.contains("usb5"), "the hub is filtered out")
        #expect(text.hasPrefix("id: \(catalog.changes.instance)-3\nevent: added\n"))

        var idle = ""
        for _ in 0..<60 where idle.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            idle = drain(stream)
        }
        #expect(idle.hasPrefix(": keep-alive\n\n"))
    }

    @Test func presentStartsWithTheDevicesPresent() async throws {
        let catalog = FakeCatalog(list: [Self.keyboard, Self.hub])
        catalog.changes.append(.added, Self.keyboard)
        catalog.changes.append(.added, Self.hub)
        let response = await call(API.router(catalog: catalog), "/v1/events", query: [("present", "true")])
        let stream = try #require(response.stream)
        stream.start {}
        defer { stream.close() }
        let text = drain(stream)
        #expect(text.components(separatedBy: "event: present\n").count == 3)
        #expect(text.contains("id: \(catalog.changes.instance)-2\n"))
    }

    @Test func aReconnectingClientGetsWhatItMissed() async throws {
        let catalog = FakeCatalog(list: [])
        for _ in 0..<3 { catalog.changes.append(.added, Self.keyboard) }
        let instance = catalog.changes.instance
        let response = await call(
            API.router(catalog: catalog), "/v1/events", headers: ["Last-Event-ID": "\(instance)-1"])
        let stream = try #require(response.stream)
        stream.start {}
        defer { stream.close() }
        let text = drain(stream)
        #expect(text.contains("id: \(instance)-2\n") && text.contains("id: \(instance)-3\n"))
        #expect(!text.contains("id: \(instance)-1\n") && !text.contains("resync"))
    }

    @Test func anIDOfAnotherRunMeansResync() async throws {
        let catalog = FakeCatalog(list: [Self.keyboard])
        catalog.changes.append(.added, Self.keyboard)
        let response = await call(
            API.router(catalog: catalog), "/v1/events", query: [("last_event_id", "0000-7")])
        let stream = try #require(response.stream)
        stream.start {}
        defer { stream.close() }
        let text = drain(stream)
        #expect(text.contains("event: resync\ndata: {\"reason\":\"'0000-7' is not an event id of this daemon run\""))
        #expect(text.contains("event: present\n"))
    }

    @Test(arguments: [
        ([("keepalive_ms", "5")], "invalid-parameter"),
        ([("present", "maybe")], "invalid-parameter"),
        ([("colour", "red")], "unknown-parameter"),
        ([("id", "../x")], "invalid-parameter"),
    ])
    func badEventQueries(query: [(String, String)], code: String) async {
        let response = await call(API.router(catalog: FakeCatalog(list: [])), "/v1/events", query: query)
        #expect(response.status == 400)
        #expect(problemCode(response) == code)
    }

    @Test func waitAnswersAtOnceWhenTheDeviceIsThere() async throws {
        let catalog = FakeCatalog(list: [Self.keyboard])
        catalog.changes.append(.added, Self.keyboard)
        let response = await call(API.router(catalog: catalog), "/v1/wait", query: [("id", "4-1")])
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self).contains("\"id\" : \"4-1\""))
    }

    /// `claim` on a wait: which port (id), which interfaces, and the transfer scope.
    static let badClaims: [([(String, String)], String)] = [
        ([("vendor_id", "0x0627"), ("claim", "0")], "missing-parameter"),
        ([("id", "4-1"), ("for", "absent"), ("claim", "0")], "missing-parameter"),
        ([("id", "4-1"), ("claim", "x")], "invalid-parameter"),
        ([("id", "4-1"), ("claim", "0,,1")], "invalid-parameter"),
        ([("id", "4-1"), ("claim", "256")], "invalid-parameter"),
        ([("id", "4-1"), ("claim", Array(repeating: "1", count: 33).joined(separator: ","))], "invalid-parameter"),
    ]

    @Test func badClaimsOnAWait() async {
        let api = API.router(catalog: FakeCatalog(list: [Self.keyboard]))
        for (query, code) in Self.badClaims {
            let response = await call(api, "/v1/wait", method: "POST", query: query)
            #expect(response.status == 400 && problemCode(response) == code, "\(query): \(String(decoding: response.body, as: UTF8.self))")
        }
        // Claiming is a change: a GET that reads takes no `claim`, and HEAD reaches no claim.
        let get = await call(api, "/v1/wait", query: [("id", "4-1"), ("claim", "0")])
        #expect(get.status == 400 && problemCode(get) == "unknown-parameter")
        let head = await call(api, "/v1/wait", method: "HEAD", query: [("id", "4-1"), ("claim", "0")])
        #expect(head.status == 400 && problemCode(head) == "unknown-parameter")
    }

    @Test func claimingOnAWaitNeedsTheTransferScope() async throws {
        let tokens = try TokenFile(text: "viewer read read-token-0123456789abcdef\n")
        let api = API.router(catalog: FakeCatalog(list: [Self.keyboard]), tokens: tokens)
        var headers = HTTPHeaders()
        headers.add("Authorization", "Bearer read-token-0123456789abcdef")
        let response = await call(api, "/v1/wait", method: "POST", query: [("id", "4-1"), ("claim", "0")], headers: headers)
        #expect(response.status == 403 && problemCode(response) == "insufficient-scope")
    }

    @Test func waitReturnsWhenTheDeviceArrives() async throws {
        let catalog = FakeCatalog(list: [])
        let api = API.router(catalog: catalog)
        let started = ContinuousClock.now
        async let response = call(api, "/v1/wait", query: [("vendor_id", "0x0627"), ("timeout_ms", "20000")])
        try await Task.sleep(for: .milliseconds(100))
        catalog.changes.append(.added, Self.hub)
        try await Task.sleep(for: .milliseconds(50))
        catalog.changes.append(.added, Self.keyboard)
        #expect(await response.status == 200)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// not_address: the same device at its old address is not what the client waits for; at
    /// another address (enumerated again) it is.
    @Test func waitForTheWayBackNeedsAnotherAddress() async throws {
        let catalog = FakeCatalog(list: [])
        catalog.changes.append(.added, Self.keyboard)
        let api = API.router(catalog: catalog)
        let address = String(Self.keyboard.address)
        let same = await call(api, "/v1/wait", query: [("id", "4-1"), ("not_address", address), ("timeout_ms", "50")])
        #expect(same.status == 404 && problemCode(same) == "device-not-present")
        let other = await call(
            api, "/v1/wait", query: [("id", "4-1"), ("not_address", String(Self.keyboard.address % 127 + 1))])
        #expect(other.status == 200)
        let bad = await call(api, "/v1/wait", query: [("id", "4-1"), ("not_address", "128")])
        #expect(bad.status == 400 && problemCode(bad) == "invalid-parameter")
    }

    @Test func waitForAbsence() async throws {
        let catalog = FakeCatalog(list: [])
        catalog.changes.append(.added, Self.keyboard)
        let api = API.router(catalog: catalog)
        async let response = call(api, "/v1/wait", query: [("id", "4-1"), ("for", "absent")])
        try await Task.sleep(for: .milliseconds(50))
        catalog.changes.append(.removed, Self.keyboard)
        let answer = await response
        #expect(answer.status == 200)
        #expect(String(decoding: answer.body, as: UTF8.self).contains("\"devices\" : [\n\n  ]"))
    }

    @Test func waitTimesOutWithAProblem() async {
        let catalog = FakeCatalog(list: [])
        catalog.changes.append(.added, Self.hub)
        let api = API.router(catalog: catalog)
        let absent = await call(api, "/v1/wait", query: [("serial", "nope"), ("timeout_ms", "50")])
        #expect(absent.status == 404 && problemCode(absent) == "device-not-present")
        let present = await call(api, "/v1/wait", query: [("id", "usb5"), ("for", "absent"), ("timeout_ms", "0")])
        #expect(present.status == 409 && problemCode(present) == "device-still-present")
    }

    @Test(arguments: [
        ([(String, String)](), "missing-parameter"),
        ([("id", "4-1"), ("for", "gone")], "invalid-parameter"),
        ([("id", "4-1"), ("timeout_ms", "-1")], "invalid-parameter"),
        ([("id", "4-1"), ("timeout_ms", "99999999")], "invalid-parameter"),
    ])
    func badWaitQueries(query: [(String, String)], code: String) async {
        let response = await call(API.router(catalog: FakeCatalog(list: [])), "/v1/wait", query: query)
        #expect(response.status == 400 && problemCode(response) == code)
    }

    @Test func aDeviceByItsSerialNumber() async {
        var twin = Self.keyboard
        twin.id = "4-2"
        twin.strings[twin.descriptor.serialNumberIndex] = "0000:00:05.0"
        let api = API.router(catalog: FakeCatalog(list: [Self.keyboard, Self.hub]))
        let hub = await call(api, "/v1/devices/serial:0000:00:05.0")
        #expect(hub.status == 200 && String(decoding: hub.body, as: UTF8.self).contains("\"id\" : \"usb5\""))
        let none = await call(api, "/v1/devices/serial:nope")
        #expect(none.status == 404 && problemCode(none) == "device-not-found")
        let empty = await call(api, "/v1/devices/serial:")
        #expect(empty.status == 400 && problemCode(empty) == "invalid-device-id")
        let hubTwin = USBDeviceInfo(
            bus: 6, address: 1, portPath: [], speed: .super, descriptor: Self.hub.descriptor,
            configurations: Self.hub.configurations, activeConfiguration: 1, strings: Self.hub.strings)
        let ambiguous = await call(API.router(catalog: FakeCatalog(list: [Self.hub, hubTwin])), "/v1/devices/serial:0000:00:05.0/descriptors/raw")
        #expect(ambiguous.status == 409 && problemCode(ambiguous) == "ambiguous-serial")
        #expect(String(decoding: ambiguous.body, as: UTF8.self).contains("usb5, usb6"))
    }

    @Test func aDeviceThatWentAwayIsGoneNotUnknown() async {
        let catalog = FakeCatalog(list: [], removed: ["4-9": 1_795_000_000.25])
        let api = API.router(catalog: catalog)
        let gone = await call(api, "/v1/devices/4-9")
        #expect(gone.status == 410 && problemCode(gone) == "device-gone")
        #expect(String(decoding: gone.body, as: UTF8.self).contains("2026-11-18T"))
        let unknown = await call(api, "/v1/devices/4-8/claims")
        #expect(unknown.status == 404 && problemCode(unknown) == "device-not-found")
    }

    func problemCode(_ response: HTTPResponse) -> String? {
        guard response.headers["Content-Type"] == "application/problem+json",
            let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        else { return nil }
        return object["code"] as? String
    }
}

final class WakeCounter: Sendable {
    private let counter = Mutex(0)
    func wake() { counter.withLock { $0 += 1 } }
    var count: Int { counter.withLock { $0 } }
}
