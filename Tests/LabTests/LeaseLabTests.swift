import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Leases on a real device: another client is kept out, the holder gets in with its token,
    /// and an expired lease gives its claims back.
    @Suite struct LeaseLabTests {
        /// A lease is on the port: it holds across the device leaving and coming back
        /// (a replug, as a firmware update does), others still get 423, the holder gets in.
        @Test func aLeaseHoldsThePortWhileTheDeviceEnumeratesAgain() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .released)
            let (leaseID, token, _) = try await lab.takeLease(id, "ttl_ms=60000")

            try await lab.replug("cycles loopback 1")
            let stranger = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(problemMismatch(stranger, status: 423, code: "lease-held") == nil, "\(stranger.text)")
            let holder = try await lab.post("/v1/devices/\(id)/interfaces/0/claim", headers: ["X-USB-Lease": token])
            #expect(holder.status == 200, "\(holder.text)")

            let released = try await lab.daemon.request(
                "DELETE", "/v1/leases/\(leaseID)", headers: ["X-USB-Lease": token])
            #expect(released.status == 200, "\(released.text)")
            try await lab.released(id)
        }

        /// Issue 24, class 5: a lease ends when its holder says: renewed shorter, it ends then
        /// (its claim released then), not at the end it had before.
        @Test func aLeaseRenewedShorterEndsSooner() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .released)
            let (leaseID, token, _) = try await lab.takeLease(id, "interface=0&ttl_ms=600000")
            let claim = try await lab.post("/v1/devices/\(id)/interfaces/0/claim", headers: ["X-USB-Lease": token])
            #expect(claim.status == 200, "\(claim.text)")
            let renewed = try await lab.daemon.request("PUT", "/v1/leases/\(leaseID)?ttl_ms=1000", headers: ["X-USB-Lease": token])
            #expect(renewed.status == 200, "\(renewed.text)")
            let start = ContinuousClock.now
            let released = await eventually(within: 10) {
                let claims = (try? await lab.daemon.get("/v1/devices/\(id)/claims").object())?["claims"] as? [Any]
                return claims?.isEmpty == true
            }
            #expect(released, "the claim it covered is released at its new end")
            #expect(ContinuousClock.now - start < .seconds(60), "not at the ten minutes it had")
            #expect(try await lab.logLine(containing: ["lease expired", leaseID]) != nil)
        }

        @Test func aLeaseKeepsOthersOutAndItsExpiryReleasesTheClaims() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .released)
            let (leaseID, token, lease) = try await lab.takeLease(id, "interface=0&ttl_ms=3000")
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

            // Not renewed: after 3 s the lease expires and its claim is released (the lease's
            // log line says when).
            #expect(try await lab.logLine(containing: ["lease expired: its streams are cut", leaseID], within: 20) != nil, "the lease expired")
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]]
            #expect(claims?.isEmpty == true, "\(String(describing: claims))")
            let free = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(free.status == 200, "the interface is free again: \(free.text)")

            // A new grant has a larger fencing number; renew and release need its token.
            let (nextID, nextToken, next) = try await lab.takeLease(id, "ttl_ms=60000")
            #expect((next["fencing"] as? Int ?? 0) > fencing)
            let wrong = try await lab.daemon.request("DELETE", "/v1/leases/\(nextID)")
            #expect(problemMismatch(wrong, status: 403, code: "lease-token-mismatch") == nil)
            let renewed = try await lab.daemon.request(
                "PUT", "/v1/leases/\(nextID)?ttl_ms=60000", headers: ["X-USB-Lease": nextToken])
            #expect(renewed.status == 200)
            let released = try await lab.daemon.request("DELETE", "/v1/leases/\(nextID)", headers: ["X-USB-Lease": nextToken])
            #expect(released.status == 200)
            #expect(try await lab.daemon.request("DELETE", "/v1/devices/\(id)/interfaces/0/claim").status == 200)
        }

        /// A lease covers streams already running too: taking it cuts them (the client sees an
        /// incomplete body, an upload gets 423 lease-held), and its holder streams under it.
        @Test func aLeaseCutsTheStreamsAlreadyRunningOnWhatItCovers() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let streamsBefore = try await lab.openStreams("in")
            try await lab.run(
                """
                rm -f "$TMPDIR/leased.rc"
                (curl -sN -o /dev/null -H 'X-Request-Id: leased-stream' \\
                  'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(endpoint)/stream'; echo "rc=$?" > "$TMPDIR/leased.rc") > /dev/null 2>&1 &
                """)
            #expect(try await lab.streamsActive("in", atLeast: streamsBefore + 1), "the stream runs before the lease is taken")
            let (leaseID, token, _) = try await lab.takeLease(id, "interface=0&ttl_ms=60000")
            let ended = try await lab.run(
                "for i in $(seq 100); do [ -s \"$TMPDIR/leased.rc\" ] && break; sleep 0.1; done; cat \"$TMPDIR/leased.rc\"")
            #expect(ended.hasPrefix("rc=18") || ended.hasPrefix("rc=56"), "curl reports an incomplete body: \(ended)")
            #expect(try await lab.logLine(containing: ["leased-stream", "stream cut: a lease now covers its interface"]) != nil)
            let holder = try await lab.daemon.request(
                "GET", "/v1/devices/\(id)/endpoints/\(endpoint)/stream?max_bytes=65536", headers: ["X-USB-Lease": token])
            #expect(holder.status == 200 && holder.body.count == 65536, "the holder streams under its lease")
            let released = try await lab.daemon.request("DELETE", "/v1/leases/\(leaseID)", headers: ["X-USB-Lease": token])
            #expect(released.status == 200)
        }

        @Test func aLeaseStopsAnUploadAlreadyRunning() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let streamsBefore = try await lab.openStreams("out")
            try await lab.run(
                """
                rm -f "$TMPDIR/upload.out"
                (head -c 6000000 /dev/zero | curl -s --limit-rate 2M -X POST -T - -H 'X-Request-Id: leased-upload' \\
                  'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(out)/stream' > "$TMPDIR/upload.body"; \\
                  echo "rc=$?" > "$TMPDIR/upload.out") > /dev/null 2>&1 &
                """)
            #expect(try await lab.streamsActive("out", atLeast: streamsBefore + 1), "the upload runs before the lease is taken")
            let (leaseID, token, _) = try await lab.takeLease(id, "ttl_ms=60000")
            let answer = try await lab.run(
                "for i in $(seq 150); do [ -s \"$TMPDIR/upload.out\" ] && break; sleep 0.1; done; cat \"$TMPDIR/upload.body\"")
            #expect(answer.contains("\"lease-held\""), "the upload's answer: \(answer)")
            #expect(try await lab.logLine(containing: ["leased-upload", "upload cut: a lease now covers its interface"]) != nil)
            let released = try await lab.daemon.request(
                "DELETE", "/v1/leases/\(leaseID)", headers: ["X-USB-Lease": token])
            #expect(released.status == 200)
        }
    }
}
