import Foundation
import HTTPRouting
import HTTPServer
import Synchronization
import Testing
import TestSupport

@testable import USBService

/// `activity` events (leases, claims, streams changing) of `GET /v1/events?activity=true`.
@Suite struct ActivityTests {
    @Test func theLogKeepsItsLastEntriesAndSaysWhenSomeWereDropped() {
        let log = ActivityLog()
        #expect(log.entries(after: 0).entries.isEmpty)
        log.note(.lease, device: "1-1")
        log.note(.stream, device: "1-2", streams: 2)
        let (entries, latest) = log.entries(after: 0)
        #expect(entries.map(\.kind) == [.lease, .stream] && entries.map(\.device) == ["1-1", "1-2"] && latest == 2)
        #expect(log.entries(after: 1).entries.map(\.sequence) == [2])
        for _ in 0..<ActivityLog.kept + 10 { log.note(.claim, device: "1-1") }
        let behind = log.entries(after: 2).entries
        #expect(behind.count == 1 && behind[0].kind == .all, "a follower that fell behind asks for everything")
        #expect(log.entries(after: log.latest - 3).entries.count == 3)
    }

    @Test func followersAreWokenUntilTheyLeave() {
        let log = ActivityLog()
        let woken = Atomic<Int>(0)
        let follower = log.follow { woken.add(1, ordering: .relaxed) }
        log.note(.claim, device: "1-1")
        log.unfollow(follower)
        log.note(.claim, device: "1-1")
        #expect(woken.load(ordering: .relaxed) == 1)
    }

    @Test func theFeedWritesActivityEventsFilteredByDevice() {
        var all = EventFeed(instance: "cafe", filter: DeviceFilter(), cursor: 0, retry: nil)
        let entries = [
            ActivityLog.Entry(kind: .lease, device: "1-1", sequence: 1),
            ActivityLog.Entry(kind: .stream, device: "2-1", sequence: 2, streams: 1),
        ]
        all.take(activity: entries)
        let text = String(decoding: all.pending, as: UTF8.self)
        #expect(text.hasPrefix("event: activity\ndata: {\"device\":\"1-1\",\"kind\":\"lease\",\"sequence\":1}\n\n"))
        #expect(text.contains("\"streams\":1"))
        #expect(!text.contains("id:"), "the stream resumes by device changes only")
        var one = EventFeed(instance: "cafe", filter: try! DeviceFilter(query: QueryParameters([(name: "id", value: "2-1")])), cursor: 0, retry: nil)
        one.take(activity: entries + [ActivityLog.Entry(kind: .all, device: "", sequence: 3)])
        let filtered = String(decoding: one.pending, as: UTF8.self)
        #expect(!filtered.contains("\"1-1\"") && filtered.contains("\"2-1\"") && filtered.contains("\"all\""))
    }

    @Test func streamSlotsTellWhatIsOpenOnTheDevice() throws {
        let told = Mutex<[String]>([])
        let slots = StreamSlots(perDevice: 4, total: 8) { device, open, _ in told.withLock { $0.append("\(device):\(open)") } }
        let first = try slots.acquire(device: "1-1")
        let second = try slots.acquire(device: "1-1")
        first.release()
        _ = slots.watch(device: "1-1")  // a watch counts against nothing and is not a stream
        second.release()
        #expect(told.withLock { $0 } == ["1-1:1", "1-1:2", "1-1:1", "1-1:0"])
    }

    /// While a metered stream is open its device's throughput is told every `reportEvery` (from
    /// its probe, read on the loop), and the reports stop once it is closed.
    @Test func meteredStreamsReportTheirThroughputUntilTheyEnd() async throws {
        let told = Mutex<[(open: Int, rate: Int?)]>([])
        let slots = StreamSlots(perDevice: 4, total: 8, reportEvery: 20) { _, open, rate in
            told.withLock { $0.append((open, rate)) }
        }
        let moved = Atomic<Int>(0)
        let slot = try slots.acquire(device: "1-1")
        slot.meter(on: FakeBench.loop) { moved.add(100_000, ordering: .relaxed).newValue }
        #expect(await eventually { told.withLock { $0.contains { ($0.rate ?? 0) > 0 } } }, "a rate is told")
        #expect(told.withLock { $0.allSatisfy { $0.open == 1 } })
        slot.release()
        #expect(told.withLock { $0.last?.open } == 0, "the end is told at once")
        #expect(await eventually { !slots.reporting }, "the reports stop")
    }

    /// A lease taken through the route is an `activity` event of a stream that asked for them
    /// (and of no other), on the scripted board (a session, no USB).
    @Test func aLeaseTakenIsAnActivityEventWhenAsked() async throws {
        let bench = FakeBench()
        let api = bench.api()
        let id = FakeCatalog.vendorBoard.id
        func open(_ query: [(String, String)]) async throws -> any HTTPBodyStream {
            let response = await api.response(
                to: HTTPRequest(method: "GET", path: "/v1/events", query: query.map { (name: $0.0, value: $0.1) }))
            let stream = try #require(response.stream)
            stream.start(wake: {})
            return stream
        }
        let with = try await open([("activity", "true"), ("keepalive_ms", "300000")])
        let without = try await open([("keepalive_ms", "300000")])
        defer {
            with.close()
            without.close()
        }
        _ = drain(with) + drain(without)  // the retry field
        let taken = await api.response(to: HTTPRequest(method: "POST", path: "/v1/devices/\(id)/leases"))
        #expect(taken.status == 201)
        #expect(drain(with).contains("event: activity\ndata: {\"device\":\"\(id)\",\"kind\":\"lease\""))
        #expect(drain(without) == "")
        #expect(await api.response(to: HTTPRequest(method: "GET", path: "/v1/events", query: [(name: "activity", value: "maybe")])).status == 400)
    }
}
