import Foundation
import HTTPServer
import Testing

@testable import USBService

/// The lease table: grants that never overlap, tokens, fencing, expiry.
@Suite struct LeaseTests {
    @Test func grantsNeverOverlap() throws {
        let table = LeaseTable()
        let first = try table.grant(device: "1-1", interface: 0, holder: "ci", ttl: .seconds(30))
        let other = try table.grant(device: "1-1", interface: 1, holder: "bob", ttl: .seconds(30))
        #expect(other.fencing > first.fencing)
        #expect(throws: LeaseProblem.held(first)) { try table.grant(device: "1-1", interface: 0, holder: "x", ttl: .seconds(1)) }
        #expect(throws: LeaseProblem.self) { try table.grant(device: "1-1", interface: nil, holder: "x", ttl: .seconds(1)) }
        _ = try table.grant(device: "2-1", interface: nil, holder: "x", ttl: .seconds(1))
        #expect(throws: LeaseProblem.self) { try table.grant(device: "2-1", interface: 3, holder: "y", ttl: .seconds(1)) }
        #expect(table.all.count == 3)
    }

    @Test func changesNeedTheTokenOfEveryLeaseTheyTouch() throws {
        let table = LeaseTable()
        let lease = try table.grant(device: "1-1", interface: 0, holder: "ci", ttl: .seconds(30))
        #expect(throws: LeaseProblem.held(lease)) { try table.check(device: "1-1", interface: 0, token: nil) }
        #expect(throws: LeaseProblem.held(lease)) { try table.check(device: "1-1", interface: 0, token: "guess") }
        #expect(try table.check(device: "1-1", interface: 0, token: lease.token) == lease)
        #expect(try table.check(device: "1-1", interface: 1, token: nil) == nil, "another interface is free")
        #expect(throws: LeaseProblem.held(lease)) { try table.check(device: "1-1", interface: nil, token: nil) }
        #expect(try table.check(device: "2-1", interface: nil, token: nil) == nil)
    }

    @Test func renewAndReleaseNeedTheToken() throws {
        let table = LeaseTable()
        let lease = try table.grant(device: "1-1", interface: nil, holder: "ci", ttl: .seconds(1))
        #expect(throws: LeaseProblem.wrongToken(lease)) { try table.renew(id: lease.id, token: nil, ttl: .seconds(60)) }
        let renewed = try table.renew(id: lease.id, token: lease.token, ttl: .seconds(60))
        #expect(renewed.expires > lease.expires && renewed.fencing == lease.fencing)
        #expect(throws: LeaseProblem.notFound("nope")) { try table.release(id: "nope", token: lease.token) }
        _ = try table.release(id: lease.id, token: lease.token)
        #expect(table.all.isEmpty)
        #expect(try table.check(device: "1-1", interface: nil, token: nil) == nil)
    }

    @Test func anExpiredLeaseIsGone() async throws {
        let table = LeaseTable()
        let lease = try table.grant(device: "1-1", interface: nil, holder: "ci", ttl: .milliseconds(50))
        try await Task.sleep(for: .milliseconds(100))
        #expect(try table.check(device: "1-1", interface: nil, token: nil) == nil)
        #expect(table.takeExpired() == [lease])
        #expect(throws: LeaseProblem.notFound(lease.id)) { try table.renew(id: lease.id, token: lease.token, ttl: .seconds(1)) }
    }

    @Test func theProblemNamesTheHolder() throws {
        let lease = try LeaseTable().grant(device: "1-1", interface: 2, holder: "ci-runner", ttl: .seconds(5))
        let problem = LeaseProblem.held(lease)
        #expect(problem.status == 423 && problem.code == "lease-held")
        #expect(problem.detail.contains("ci-runner") && problem.detail.contains("Interface 2 of 1-1"))
        #expect(problem.headers["X-USB-Lease-Holder"] == "ci-runner")
        #expect(!problem.detail.contains(lease.token), "never the token")
    }

    @Test func aDeviceLeaseSaysInterfaceNull() throws {
        let lease = try LeaseTable().grant(device: "1-1", interface: nil, holder: "ci", ttl: .seconds(5))
        let text = String(decoding: try JSON.encode(LeaseModel(lease, withToken: false)), as: UTF8.self)
        #expect(text.contains("\"interface\" : null") && !text.contains("token"))
    }

    @Test func leaseRoutesWithoutALease() async throws {
        let api = API.router(catalog: FakeCatalog(list: []))
        let list = await api.response(to: HTTPRequest(method: "GET", path: "/v1/leases"))
        #expect(list.status == 200 && String(decoding: list.body, as: UTF8.self).contains("\"leases\" : ["))
        let renew = await api.response(to: HTTPRequest(method: "PUT", path: "/v1/leases/abc"))
        #expect(renew.status == 404)
        let take = await api.response(to: HTTPRequest(method: "POST", path: "/v1/devices/9-9/leases", query: [("ttl_ms", "5")]))
        #expect(take.status == 400, "ttl_ms below 1000")
    }
}
