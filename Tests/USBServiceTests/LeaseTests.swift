import Foundation
import HTTPServer
import Testing

@testable import USBService

/// The lease table: grants that never overlap, tokens, fencing, expiry.
@Suite struct LeaseTests {
    /// Times for the book: `t(0)` is the start, `t(n)` n seconds later.
    static let start = ContinuousClock.now
    static func t(_ seconds: Double) -> LeaseBook.Now {
        LeaseBook.Now(instant: start + .milliseconds(Int(seconds * 1000)), unix: 1_800_000_000 + seconds)
    }

    static func grant(
        _ book: inout LeaseBook, _ device: String, _ interface: UInt8?, holder: String = "ci", ttl: Double = 30, at time: Double = 0
    ) throws(LeaseProblem) -> (lease: Lease, ended: [Lease]) {
        try book.grant(
            device: device, interface: interface, holder: holder, ttl: .milliseconds(Int(ttl * 1000)),
            id: "lease-\(book.fencing + 1)", token: "token-\(book.fencing + 1)", now: t(time))
    }

    @Test func grantsNeverOverlap() throws {
        var book = LeaseBook()
        let first = try Self.grant(&book, "1-1", 0).lease
        let other = try Self.grant(&book, "1-1", 1, holder: "bob").lease
        #expect(other.fencing > first.fencing)
        #expect(throws: LeaseProblem.held(first)) { try Self.grant(&book, "1-1", 0) }
        #expect(throws: LeaseProblem.self) { try Self.grant(&book, "1-1", nil) }
        _ = try Self.grant(&book, "2-1", nil)
        #expect(throws: LeaseProblem.self) { try Self.grant(&book, "2-1", 3) }
        #expect(book.live(now: Self.t(1).instant).count == 3)
        #expect(first.expiresAt == 1_800_000_030)
    }

    @Test func changesNeedTheTokenOfEveryLeaseTheyTouch() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", 0).lease
        let now = Self.t(1).instant
        #expect(throws: LeaseProblem.held(lease)) { try book.check(device: "1-1", interface: 0, token: nil, now: now) }
        #expect(throws: LeaseProblem.held(lease)) { try book.check(device: "1-1", interface: 0, token: "guess", now: now) }
        #expect(try book.check(device: "1-1", interface: 0, token: lease.token, now: now) == lease)
        #expect(try book.check(device: "1-1", interface: 1, token: nil, now: now) == nil, "another interface is free")
        #expect(throws: LeaseProblem.held(lease)) { try book.check(device: "1-1", interface: nil, token: nil, now: now) }
        #expect(try book.check(device: "2-1", interface: nil, token: nil, now: now) == nil)
    }

    @Test func renewAndReleaseNeedTheToken() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", nil, ttl: 1).lease
        #expect(throws: LeaseProblem.wrongToken(lease)) { try book.renew(id: lease.id, token: nil, ttl: .seconds(60), now: Self.t(0.5)) }
        let renewed = try book.renew(id: lease.id, token: lease.token, ttl: .seconds(60), now: Self.t(0.5))
        #expect(renewed.expires > lease.expires && renewed.fencing == lease.fencing)
        #expect(renewed.expiresAt == 1_800_000_060.5)
        #expect(throws: LeaseProblem.notFound("nope")) { try book.release(id: "nope", token: lease.token, now: Self.t(1).instant) }
        #expect(throws: LeaseProblem.wrongToken(renewed)) { try book.release(id: lease.id, token: "guess", now: Self.t(1).instant) }
        _ = try book.release(id: lease.id, token: lease.token, now: Self.t(1).instant)
        #expect(book.leases.isEmpty)
        #expect(try book.check(device: "1-1", interface: nil, token: nil, now: Self.t(1).instant) == nil)
    }

    /// An expired lease holds nothing, cannot be renewed or released, and comes out of the book
    /// once: to the reaper, or to the grant that finds it.
    @Test func anExpiredLeaseComesOutOnce() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", nil, ttl: 1).lease
        let later = Self.t(2)
        #expect(try book.check(device: "1-1", interface: nil, token: nil, now: later.instant) == nil)
        #expect(book.live(now: later.instant).isEmpty, "not listed")
        #expect(throws: LeaseProblem.notFound(lease.id)) { try book.renew(id: lease.id, token: lease.token, ttl: .seconds(1), now: later) }
        #expect(throws: LeaseProblem.notFound(lease.id)) { try book.release(id: lease.id, token: lease.token, now: later.instant) }
        #expect(book.leases.count == 1, "listing, renewing and releasing do not drop it: its claims are not released yet")
        let next = try Self.grant(&book, "1-1", 0, holder: "bob", at: 2)
        #expect(next.ended == [lease], "the grant hands it out, to be ended before the new holder gets its token")
        #expect(book.takeExpired(now: Self.t(3).instant).isEmpty, "and never again")
    }

    /// A leased device that leaves (a re-enumeration, a firmware update) keeps its lease for
    /// the lease's grace; back on the port, the lease runs on as renewed.
    @Test func aLeaseWaitsForItsDeviceOnlyWithinItsGrace() throws {
        var book = LeaseBook()
        var lease = try book.grant(
            device: "1-1", interface: nil, holder: "ci", ttl: .seconds(60), id: "a", token: "t", now: Self.t(0),
            grace: .seconds(5)).lease
        _ = try Self.grant(&book, "2-1", nil, ttl: 60)
        #expect(book.devicesPresent(["1-1", "2-1"], now: Self.t(1)) == nil, "nothing changes while both are here")
        // 1-1 leaves at t=10: the lease runs out at t=15 unless it comes back.
        #expect(book.devicesPresent(["2-1"], now: Self.t(10)) == Self.t(15).instant)
        lease = try #require(book.leases["a"])
        #expect(lease.expiresAt == 1_800_000_015 && lease.goneSince == Self.t(10))
        #expect(throws: LeaseProblem.self) { try Self.grant(&book, "1-1", nil, holder: "bob", at: 12) }
        // A renewal meanwhile does not stretch the grace.
        lease = try book.renew(id: "a", token: "t", ttl: .seconds(60), now: Self.t(12))
        #expect(lease.expiresAt == 1_800_000_015)
        // Back at t=14: the renewal counts again.
        #expect(book.devicesPresent(["1-1", "2-1"], now: Self.t(14)) == nil)
        lease = try #require(book.leases["a"])
        #expect(lease.expiresAt == 1_800_000_072 && lease.goneSince == nil)
        // Gone again, for good: out at the end of the grace, and only this lease.
        _ = book.devicesPresent(["2-1"], now: Self.t(20))
        let out = book.takeExpired(now: Self.t(25).instant)
        #expect(out.map(\.id) == ["a"] && out[0].goneSince != nil)
        #expect(book.leases.count == 1)
    }

    @Test func anAdminMayEndAnyLease() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", 0).lease
        #expect(try book.release(id: lease.id, token: nil, force: true, now: Self.t(1).instant) == lease)
        #expect(book.leases.isEmpty)
    }

    /// One task ends every lease on time, each once, woken sooner by a grant that expires
    /// sooner, and gone when no lease is left.
    @Test func theReaperEndsEachLeaseOnceAndStops() async throws {
        let (ends, continuation) = AsyncStream<(String, LeaseTable.Ending)>.makeStream()
        let table = LeaseTable { lease, why in continuation.yield((lease.id, why)) }
        let long = try await table.grant(device: "1-1", interface: 0, holder: "ci", ttl: .seconds(3600))
        #expect(table.reaperRunning)
        let short = try await table.grant(device: "2-1", interface: nil, holder: "ci", ttl: .milliseconds(30))
        var iterator = ends.makeAsyncIterator()
        let first = await iterator.next()
        #expect(first?.0 == short.id && first?.1 == .expired, "woken for the sooner one, an hour early for the other")
        #expect(table.all.map(\.id) == [long.id])
        let ended = try await table.endByAdmin(id: long.id)
        #expect(ended.id == long.id)
        let second = await iterator.next()
        #expect(second?.0 == long.id && second?.1 == .endedByAdmin)
        for _ in 0..<1000 where table.reaperRunning { await Task.yield() }
        // The reaper wakes at the hour's old deadline only if something is left: nothing is.
        let renewed = try await table.grant(device: "3-1", interface: nil, holder: "ci", ttl: .seconds(60))
        for _ in 0..<100 { _ = try table.renew(id: renewed.id, token: renewed.token, ttl: .seconds(60)) }
        #expect(table.all.count == 1, "a renewal loop adds nothing")
    }

    @Test func theProblemNamesTheHolder() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", 2, holder: "ci-runner").lease
        let problem = LeaseProblem.held(lease)
        #expect(problem.status == 423 && problem.code == "lease-held")
        #expect(problem.detail.contains("ci-runner") && problem.detail.contains("Interface 2 of 1-1"))
        #expect(problem.headers["X-USB-Lease-Holder"] == "ci-runner")
        #expect(!problem.detail.contains(lease.token), "never the token")
    }

    @Test func aDeviceLeaseSaysInterfaceNull() throws {
        var book = LeaseBook()
        let lease = try Self.grant(&book, "1-1", nil).lease
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
