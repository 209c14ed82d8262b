import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// What clients that mirror libusb (PyUSB's backend among them) need of the daemon: the
    /// bound kernel driver, claims that leave it alone, no timeout, no IN data lost to a
    /// timeout, the device's instance, and selecting the active configuration again.
    @Suite struct ClientNeedsTests {
        /// The details name each interface's kernel driver; a claim with detach=false leaves it
        /// bound and answers 409 device-busy naming it.
        @Test func theBoundDriverIsShownAndDetachFalseLeavesIt() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(vendor: 0x0627, product: 0x0001)
            try await lab.released(id)
            let details = try await lab.daemon.get("/v1/devices/\(id)").object()
            let configurations = details["configurations"] as? [[String: Any]] ?? []
            let interfaces = configurations.first?["interfaces"] as? [[String: Any]] ?? []
            #expect(interfaces.first?["driver"] as? String == "usbhid", "\(interfaces)")

            let claim = try await lab.post("/v1/devices/\(id)/interfaces/0/claim?detach=false")
            #expect(problemMismatch(claim, status: 409, code: "device-busy") == nil, "\(claim.text)")
            #expect(claim.text.contains("usbhid"), "\(claim.text)")
            let driver = "/sys/bus/usb/devices/\(id):1.0/driver"
            #expect(try await lab.run("basename $(readlink \(driver))").contains("usbhid"), "usbhid keeps it")
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()
            #expect((claims["claims"] as? [Any])?.isEmpty == true, "nothing was claimed: \(claims)")

            // Claimed (detached), the details say usbfs holds it; released, usbhid again.
            try await lab.claimed(id)
            let claimed = try await lab.daemon.get("/v1/devices/\(id)").text
            #expect(claimed.contains("\"driver\" : \"usbfs\""), "\(claimed)")
            try await lab.released(id)
        }

        /// A read that times out after a full packet came keeps that packet for the next read.
        @Test func aTimedOutReadLosesNoData() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            #expect(try await lab.vendor(id, "out", request: Gadget.interruptQueue, value: 64).status == 200)
            // 64 bytes is a whole packet: the transfer waits for the rest, then times out.
            let partial = try await lab.read(id, endpoint: interrupt, length: 128, timeout: 300)
            #expect(problemMismatch(partial, status: 504, code: "usb-timeout") == nil, "\(partial.text)")
            #expect(partial.header("X-USB-Actual-Length") == "64", "\(partial.headers)")
            #expect(partial.text.contains("kept for the next read"), "\(partial.text)")
            let next = try await lab.read(id, endpoint: interrupt, length: 64, timeout: 300)
            #expect(next.status == 200 && next.body.count == 64, "\(next.text)")
            #expect(next.body.first == 0xa0, "the packet's first byte: \(next.body.prefix(4))")
        }

        /// timeout_ms=0 waits (up to --max-timeout-ms, 10 minutes here), and the client's hang-up
        /// still cancels the transfer.
        @Test func noTimeoutWaitsUntilTheClientLeaves() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            let requestID = "forever-\(UInt32.random(in: 0...UInt32.max))"
            let connection = try await lab.readInFlight(
                id, endpoint: interrupt, query: "length=64&timeout_ms=0", requestID: requestID)
            #expect(try await connection.response(within: 1.5) == nil, "no answer: nothing came and there is no timeout")
            connection.close()
            #expect(try await lab.logLine(containing: ["transfer cancelled", requestID]) != nil)
        }

        /// X-USB-Device-Address names the instance of the device: the right one is served, a
        /// stale one (the device enumerated again since) is 410 device-reenumerated.
        @Test func aStaleAddressIsTold() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.gadget)
            let summary = try await lab.daemon.get("/v1/devices/\(id)").object()
            let address = try #require(summary["address"] as? Int)
            let path = "/v1/devices/\(id)/claims"
            let current = try await lab.daemon.request("GET", path, headers: ["X-USB-Device-Address": "\(address)"])
            #expect(current.status == 200, "\(current.text)")
            let stale = address == 127 ? 1 : address + 1
            let old = try await lab.daemon.request("GET", path, headers: ["X-USB-Device-Address": "\(stale)"])
            #expect(problemMismatch(old, status: 410, code: "device-reenumerated") == nil, "\(old.text)")
        }

        /// Selecting the active configuration again is a no-op, even with an interface claimed
        /// (PyUSB scripts begin with dev.set_configuration()); another value still needs none.
        @Test func theActiveConfigurationAgainChangesNothing() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let active = try #require(try await lab.daemon.get("/v1/devices/\(id)").object()["active_configuration"] as? Int)
            let again = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=\(active)")
            #expect(again.status == 200, "\(again.text)")
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()
            #expect((claims["claims"] as? [[String: Any]])?.first?["interface"] as? Int == 0, "the claim stays: \(claims)")
            let other = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=0")
            #expect(problemMismatch(other, status: 409, code: "claims-held") == nil, "\(other.text)")
        }
    
        /// Under tokens, the transfer scope may select the active configuration again (a
        /// no-op) but not change it (403 insufficient-scope): that stays the admin's.
        @Test func theTransferScopeMaySelectOnlyTheActiveConfiguration() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .released)
            let active = try #require(try await lab.daemon.get("/v1/devices/\(id)").object()["active_configuration"] as? Int)
            let output = try await lab.run(
                """
                printf 'tester transfer transfer-token-0123456789abcdef\\n' > "$TMPDIR/tokens"
                chmod 600 "$TMPDIR/tokens"
                setsid \(LabSession.daemonBinary) --port 8098 --token-file "$TMPDIR/tokens" > "$TMPDIR/scope.log" 2>&1 &
                pid=$!
                for i in $(seq 300); do curl -sf http://127.0.0.1:8098/readyz > /dev/null && break; sleep 0.1; done
                B=http://127.0.0.1:8098/v1/devices/\(id)/configuration
                A='Authorization: Bearer transfer-token-0123456789abcdef'
                echo "again=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "$A" "$B?value=\(active)")"
                curl -s -X PUT -H "$A" "$B?value=0"
                echo
                kill $pid
                """)
            #expect(output.contains("again=200"), "\(output)")
            #expect(output.contains("insufficient-scope"), "\(output)")
            #expect(try await lab.daemon.get("/v1/devices/\(id)").object()["active_configuration"] as? Int == active)
        }
    }
}
