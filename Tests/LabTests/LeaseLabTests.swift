import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Leases on a real device: another client is kept out, the holder gets in with its token,
    /// and an expired lease gives its claims back.
    @Suite struct LeaseLabTests {
        @Test func aLeaseKeepsOthersOutAndItsExpiryReleasesTheClaims() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.loopback)
            try await lab.released(id)
            let taken = try await lab.post("/v1/devices/\(id)/leases?interface=0&ttl_ms=3000")
            #expect(taken.status == 201, "\(taken.text)")
            let lease = try taken.object()
            let leaseID = try #require(lease["id"] as? String)
            let token = try #require(lease["token"] as? String)
            let fencing = try #require(lease["fencing"] as? Int)

            let stranger = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(problemMismatch(stranger, status: 423, code: "lease-held") == nil, "\(stranger.text)")
            #expect(stranger.header("X-USB-Lease-Holder") == "anonymous")
            let reset = try await lab.post("/v1/devices/\(id)/reset")
            #expect(problemMismatch(reset, status: 423, code: "lease-held") == nil, "a device-wide change is covered too")
            #expect(try await lab.daemon.get("/v1/devices/\(id)").status == 200, "reading stays open")

            let holder = try await lab.post("/v1/devices/\(id)/interfaces/0/claim", headers: ["X-USB-Lease": token])
            #expect(holder.status == 200, "\(holder.text)")
            let second = try await lab.post("/v1/devices/\(id)/leases?ttl_ms=3000")
            #expect(problemMismatch(second, status: 423, code: "lease-held") == nil, "no overlapping lease")

            let list = try await lab.daemon.get("/v1/leases")
            #expect(list.text.contains(leaseID) && !list.text.contains(token), "listed, without its token")

            // Not renewed: after 3 s the lease expires and its claim is released.
            try await Task.sleep(for: .seconds(4))
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]]
            #expect(claims?.isEmpty == true, "\(String(describing: claims))")
            let free = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(free.status == 200, "the interface is free again: \(free.text)")

            // A new grant has a larger fencing number; renew and release need its token.
            let next = try await lab.post("/v1/devices/\(id)/leases?ttl_ms=60000").object()
            #expect((next["fencing"] as? Int ?? 0) > fencing)
            let nextID = try #require(next["id"] as? String)
            let nextToken = try #require(next["token"] as? String)
            let wrong = try await lab.daemon.request("DELETE", "/v1/leases/\(nextID)")
            #expect(problemMismatch(wrong, status: 403, code: "lease-token-mismatch") == nil)
            let renewed = try await lab.daemon.request(
                "PUT", "/v1/leases/\(nextID)?ttl_ms=60000", headers: ["X-USB-Lease": nextToken])
            #expect(renewed.status == 200)
            let released = try await lab.daemon.request("DELETE", "/v1/leases/\(nextID)", headers: ["X-USB-Lease": nextToken])
            #expect(released.status == 200)
            #expect(try await lab.daemon.request("DELETE", "/v1/devices/\(id)/interfaces/0/claim").status == 200)
        }
    }
}
