import Foundation
import HTTPRouting
import HTTPServer
import Synchronization
import Testing
import TestSupport
import USB
import USBFakes
import USBService

/// Issue 24, class 5: time-based and multi-step state is exact. A lease ends when its holder
/// says (renewed shorter, it ends sooner, its claims released then); bytes a read kept belong
/// to the client and lease that read them; a wait that claims several interfaces claims all
/// or none. Over the scripted device, with the real routes.
@Suite struct ExactStateTests {
    static let id = FakeCatalog.vendorBoard.id

    func call(
        _ api: Router, _ method: String, _ path: String, _ query: [(String, String)] = [], from address: String = "10.0.0.1",
        lease: String? = nil
    ) async -> HTTPResponse {
        var headers = HTTPHeaders()
        if let lease { headers.add("X-USB-Lease", lease) }
        var request = HTTPRequest(
            method: method, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: headers)
        request.remoteAddress = address
        return await api.response(to: request)
    }

    func object(_ response: HTTPResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    func takeLease(_ api: Router, interface: Int, ttl: Int, from address: String = "10.0.0.1") async throws -> (id: String, token: String) {
        let taken = await call(
            api, "POST", "/v1/devices/\(Self.id)/leases", [("interface", String(interface)), ("ttl_ms", String(ttl))], from: address)
        #expect(taken.status == 200 || taken.status == 201, "\(String(decoding: taken.body, as: UTF8.self))")
        let lease = object(taken)
        return (try #require(lease["id"] as? String), try #require(lease["token"] as? String))
    }

    @Test func aLeaseRenewedShorterEndsSoonerAndReleasesItsClaimThen() async throws {
        let bench = FakeBench()
        let api = bench.api()
        let lease = try await takeLease(api, interface: 0, ttl: 600_000)
        let claim = await call(api, "POST", "/v1/devices/\(Self.id)/interfaces/0/claim", lease: lease.token)
        #expect(claim.status == 200)
        let renewed = await call(api, "PUT", "/v1/leases/\(lease.id)", [("ttl_ms", "1000")], lease: lease.token)
        #expect(renewed.status == 200)
        // Ten minutes at first; renewed to one second, its end comes after one second, not ten minutes.
        let start = ContinuousClock.now
        #expect(await eventually(within: 5) { await bench.session.state.claims.isEmpty }, "the claim it covered is released")
        #expect(ContinuousClock.now - start >= .milliseconds(700), "not before its new end")
        let list = await call(api, "GET", "/v1/leases")
        #expect((object(list)["leases"] as? [Any])?.isEmpty == true)
    }

    /// Each read's URB gets bytes of the next value (1, 2, 3, …): whose bytes a read gets shows.
    static func numberedReads() -> FakeBench {
        let counter = Mutex(0)
        return FakeBench { urb in
            guard urb.endpoint == 0x81 else { return .complete() }
            let value = counter.withLock { $0 += 1; return $0 }
            return .complete(data: [UInt8](repeating: UInt8(value), count: 200))
        }
    }

    @Test func keptBytesAreTheirReadersAndNoOneElses() async throws {
        let bench = Self.numberedReads()
        let api = bench.api()
        #expect(await call(api, "POST", "/v1/devices/\(Self.id)/interfaces/0/claim").status == 200)
        let path = "/v1/devices/\(Self.id)/endpoints/0x81/data"
        let first = await call(api, "GET", path, [("length", "100")], from: "10.0.0.1")
        #expect(first.body == [UInt8](repeating: 1, count: 100))
        // Another client does not get the 100 bytes the first one left behind: a new URB.
        let other = await call(api, "GET", path, [("length", "500")], from: "10.0.0.2")
        #expect(other.body == [UInt8](repeating: 2, count: 200), "\(other.body.prefix(4))")
        // The first client's bytes were dropped when another read the endpoint.
        let again = await call(api, "GET", path, [("length", "500")], from: "10.0.0.1")
        #expect(again.body == [UInt8](repeating: 3, count: 200))
        // The same client keeps its own.
        let part = await call(api, "GET", path, [("length", "50")], from: "10.0.0.1")
        #expect(part.body == [UInt8](repeating: 4, count: 50))
        let rest = await call(api, "GET", path, [("length", "500")], from: "10.0.0.1")
        #expect(rest.body == [UInt8](repeating: 4, count: 150))
        #expect(bench.device.submitted.count == 4)
    }

    @Test func keptBytesDoNotCrossALeasesStartOrEnd() async throws {
        let bench = Self.numberedReads()
        let api = bench.api()
        #expect(await call(api, "POST", "/v1/devices/\(Self.id)/interfaces/0/claim").status == 200)
        let path = "/v1/devices/\(Self.id)/endpoints/0x81/data"
        // Read before the lease: kept bytes of value 1.
        _ = await call(api, "GET", path, [("length", "100")])
        let lease = try await takeLease(api, interface: 0, ttl: 60_000)
        // Under the lease, the same client gets fresh bytes (value 2), not what it kept before.
        let leased = await call(api, "GET", path, [("length", "100")], lease: lease.token)
        #expect(leased.body == [UInt8](repeating: 2, count: 100))
        // What it kept under the lease is not handed out after it ends.
        let released = await call(api, "DELETE", "/v1/leases/\(lease.id)", lease: lease.token)
        #expect(released.status == 200)
        let after = await call(api, "GET", path, [("length", "100")])
        #expect(after.body == [UInt8](repeating: 3, count: 100))
    }

    @Test func aClaimingWaitClaimsAllOrNothing() async throws {
        let bench = FakeBench()
        _ = bench.catalog.changes.append(.added, FakeCatalog.vendorBoard)  // the device is back
        let api = bench.api()
        // Someone else holds interface 1 under a lease.
        _ = try await takeLease(api, interface: 1, ttl: 60_000, from: "10.0.0.9")
        let wait = await call(
            api, "POST", "/v1/wait", [("id", Self.id), ("claim", "0,1"), ("timeout_ms", "1000")], from: "10.0.0.1")
        #expect(problemMismatch(wait, status: 423, code: "lease-held") == nil, "\(String(decoding: wait.body, as: UTF8.self))")
        #expect(await bench.session.state.claims.isEmpty, "interface 0 was given back: all or nothing")
        // Interface 0 alone is claimed, and one already claimed stays claimed after a refusal.
        let zero = await call(api, "POST", "/v1/wait", [("id", Self.id), ("claim", "0"), ("timeout_ms", "1000")])
        #expect(zero.status == 200)
        let again = await call(api, "POST", "/v1/wait", [("id", Self.id), ("claim", "0,1"), ("timeout_ms", "1000")])
        #expect(problemMismatch(again, status: 409, code: "interface-claimed") == nil)
        #expect(await bench.session.state.claims.keys.sorted() == [0], "the claim made before is not this call's to undo")
        // A wait that claims 2 (none such: named as not claimed) then 1 (leased): 0 stays, nothing else.
        #expect(await call(api, "DELETE", "/v1/devices/\(Self.id)/interfaces/0/claim").status == 200)
        let third = await call(api, "POST", "/v1/wait", [("id", Self.id), ("claim", "0,2,1"), ("timeout_ms", "1000")])
        #expect(problemMismatch(third, status: 423, code: "lease-held") == nil)
        #expect(await bench.session.state.claims.isEmpty)
    }
}

/// Issue 24, class 4: one client's slow control request does not starve another's past its own
/// timeout: endpoint 0 is queued by the daemon, and a holder past the limit is cut.
@Suite struct ControlFairnessTests {
    static let id = FakeCatalog.vendorBoard.id

    func control(_ api: Router, from address: String, request: Int, timeout: Int) async -> HTTPResponse {
        var http = HTTPRequest(
            method: "POST", path: "/v1/devices/\(Self.id)/control",
            query: [("request_type", "0xc0"), ("request", String(request)), ("length", "4"), ("timeout_ms", String(timeout))]
                .map { (name: $0.0, value: $0.1) })
        http.remoteAddress = address
        return await api.response(to: http)
    }

    /// Vendor request 0x30 never completes (a firmware that answers late); others at once.
    static func slowBoard(holdLimit: Int) -> FakeBench {
        FakeBench(controlHoldLimit: holdLimit) { urb in
            urb.setup?.request == 0x30 ? .hold() : .complete(data: [1, 2, 3, 4])
        }
    }

    @Test func aSlowRequestIsCutWhenAnotherClientWaitsAndTheOtherIsServed() async throws {
        let bench = Self.slowBoard(holdLimit: 300)
        let api = bench.api()
        let slow = Task { await control(api, from: "10.0.0.1", request: 0x30, timeout: 60_000) }
        #expect(try await bench.device.waitForHeld(1).count == 1)
        // Served only because the slow one (a minute's timeout) was cut at the limit: else this
        // one's 5 s would have run out while it waited.
        let quick = await control(api, from: "10.0.0.2", request: 0x01, timeout: 5000)
        #expect(quick.status == 200 && quick.body == [1, 2, 3, 4], "\(String(decoding: quick.body, as: UTF8.self))")
        let cut = await slow.value
        #expect(problemMismatch(cut, status: 504, code: "usb-timeout") == nil, "\(String(decoding: cut.body, as: UTF8.self))")
        #expect(bench.budget.inUse == 0)
    }

    @Test func aWaiterWhoseTimeoutRunsOutIsAnsweredThenAndNothingIsSent() async throws {
        let bench = Self.slowBoard(holdLimit: 60_000)
        let api = bench.api()
        let slow = Task { await control(api, from: "10.0.0.1", request: 0x30, timeout: 60_000) }
        #expect(try await bench.device.waitForHeld(1).count == 1)
        // Answered while the slow one still holds endpoint 0 (until it is cancelled below).
        let quick = await control(api, from: "10.0.0.2", request: 0x01, timeout: 200)
        #expect(problemMismatch(quick, status: 504, code: "usb-timeout") == nil)
        #expect(String(decoding: quick.body, as: UTF8.self).contains("waited"), "it says it waited for endpoint 0")
        #expect(bench.device.submitted.count == 1, "only the slow request reached the device")
        slow.cancel()
        _ = await slow.value
    }
}
