import Foundation
import HTTPRouting
import HTTPServer
import Testing
import USBService

/// `GET /v1/claims`: every device with claimed interfaces, read from the sessions open now
/// (the bench page asks it at load instead of opening each device).
@Suite struct ClaimListTests {
    func devices(_ api: Router, _ query: [(name: String, value: String)] = []) async -> (Int, [[String: Any]], [String: Any]) {
        let answer = await api.response(to: HTTPRequest(method: "GET", path: "/v1/claims", query: query))
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]) ?? [:]
        return (answer.status, object["devices"] as? [[String: Any]] ?? [], object)
    }

    @Test func theClaimsOfOpenDevicesAllAtOnce() async throws {
        let bench = FakeBench([FakeCatalog.vendorBoard, FakeCatalog.keyboard])
        let api = bench.api()
        let board = FakeCatalog.vendorBoard.id
        #expect(await devices(api).1.isEmpty, "open sessions, nothing claimed")
        let claim = await api.response(to: HTTPRequest(method: "POST", path: "/v1/devices/\(board)/interfaces/0/claim"))
        #expect(claim.status == 200)
        let (status, held, _) = await devices(api)
        #expect(status == 200 && held.map { $0["id"] as? String } == [board])
        #expect((held.first?["claims"] as? [[String: Any]])?.map { $0["interface"] as? Int } == [0])
        #expect(held.first?["configuration"] as? Int == 1)
        _ = await api.response(to: HTTPRequest(method: "DELETE", path: "/v1/devices/\(board)/interfaces/0/claim"))
        #expect(await devices(api).1.isEmpty, "released")
        // A device nobody opened is not opened to answer: it has no claims.
        #expect(await devices(API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard]))).1.isEmpty)
        let (refused, _, problem) = await devices(api, [(name: "device", value: board)])
        #expect(refused == 400 && problem["code"] as? String == "unknown-parameter")
    }
}
