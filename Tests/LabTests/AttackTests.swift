import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The attacks of the hardening review, tried against the real daemon in the lab, with
    /// what it answers now.
    @Suite struct AttackTests {
        /// `curl` in the guest against the lab's daemon: "<status> <body>".
        func curl(_ lab: LabSession, _ arguments: String) async throws -> (status: Int, body: String) {
            let output = try await lab.exec("curl -s -w '\\n%{http_code}' \(arguments)")
            let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        /// A page on another site that rebinds its name to the bench machine (DNS rebinding)
        /// sends its own name as Host: it reads nothing.
        @Test func aReboundHostReadsNothing() async throws {
            let lab = try await Lab.shared.session()
            let rebound = try await curl(lab, "-H 'Host: rebind.evil.example' http://127.0.0.1:8080/v1/devices")
            #expect(rebound.status == 421 && rebound.body.contains("misdirected-request"), "\(rebound)")
            #expect(!rebound.body.contains("lab-ffs"))
            let byName = try await curl(lab, "http://localhost:8080/v1/devices")
            #expect(byName.status == 200)
        }

        /// A cross-site form POST (text/plain: no preflight) cannot claim an interface; the
        /// page may still load the list (its answer stays with the browser).
        @Test func aCrossSitePostClaimsNothing() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .released)
            let post = try await curl(
                lab,
                "-X POST -H 'Origin: https://evil.example' -H 'Content-Type: text/plain' --data x "
                    + "http://127.0.0.1:8080/v1/devices/\(id)/interfaces/0/claim")
            #expect(post.status == 403 && post.body.contains("foreign-origin"), "\(post)")
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()
            #expect((claims["claims"] as? [Any])?.isEmpty == true, "nothing was claimed: \(claims)")
            let reset = try await curl(lab, "-X POST -H 'Sec-Fetch-Site: cross-site' http://127.0.0.1:8080/v1/devices/\(id)/reset")
            #expect(reset.status == 403)
            let read = try await curl(lab, "-H 'Origin: https://evil.example' http://127.0.0.1:8080/v1/devices")
            #expect(read.status == 200)
        }

        /// Issue 24, class 4: a page on another site cannot hold the daemon's connections with
        /// an event stream or a long poll: both answer 403 from the head, at once.
        @Test func aCrossSitePageHoldsNothingOpen() async throws {
            let lab = try await Lab.shared.session()
            let events = try await curl(lab, "-m 10 -H 'Origin: https://evil.example' http://127.0.0.1:8080/v1/events")
            #expect(events.status == 403 && events.body.contains("hold a connection open"), "\(events)")
            let wait = try await curl(
                lab, "-m 10 -H 'Sec-Fetch-Site: cross-site' 'http://127.0.0.1:8080/v1/wait?serial=nothing-here&timeout_ms=60000'")
            #expect(wait.status == 403 && wait.body.contains("foreign-origin"), "\(wait)")
            // The same wait from a tool (no Origin) still waits, and answers at its timeout.
            let tool = try await curl(lab, "-m 10 'http://127.0.0.1:8080/v1/wait?serial=nothing-here&timeout_ms=200'")
            #expect(tool.status == 404, "the wait timed out with nothing found: \(tool)")
        }

        /// Issue 24, class 4: one client's slow control request (the lab gadget's DELAYED vendor
        /// request) does not starve another's: a request whose timeout runs out while it waits for
        /// endpoint 0 is answered then, nothing sent; one that holds endpoint 0 past the limit
        /// (5 s) while another client waits is cut and the other served.
        @Test func aSlowControlRequestDoesNotStarveAnotherClients() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.gadget)
            let device = "http://127.0.0.1:8080/v1/devices/\(id)/control"
            func slow(_ milliseconds: Int) async throws {
                let held = try await lab.usbfsBytesInUse()
                try await lab.run(
                    "(curl -s --interface 127.0.0.30 -o /dev/null -w '%{http_code} %{time_total}' -X POST "
                        + "'\(device)?request_type=0xc0&request=0x30&value=\(milliseconds)&length=4&timeout_ms=20000' "
                        + "> \"$TMPDIR/slow.out\" 2>&1 &)")
                #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 > held }, "the slow request is in flight")
            }
            func slowAnswer() async throws -> String {
                try await lab.run(
                    "for i in $(seq 300); do [ -s \"$TMPDIR/slow.out\" ] && break; sleep 0.1; done; cat \"$TMPDIR/slow.out\"; rm -f \"$TMPDIR/slow.out\"")
            }
            // Waiting its own second while the slow one holds endpoint 0 for 6: answered at its
            // timeout, saying it waited, while the slow one still runs; the slow one completes.
            try await slow(6000)
            let waited = try await curl(lab, "--interface 127.0.0.31 -X POST '\(device)?request_type=0xc0&request=1&length=4&timeout_ms=1000'")
            #expect(waited.status == 504 && waited.body.contains("waited"), "\(waited)")
            let running = try await lab.run("[ -s \"$TMPDIR/slow.out\" ] && echo done || echo running")
            #expect(running == "running\n", "answered before the slow one ended, not after it")
            #expect(try await slowAnswer().hasPrefix("200"))
            // Waiting 10 s while the slow one would hold endpoint 0 for 8: the slow one is cut at
            // 5 s and the other is served.
            try await slow(8000)
            let served = try await curl(lab, "--interface 127.0.0.31 -X POST '\(device)?request_type=0x80&request=0&length=2&timeout_ms=10000'")
            #expect(served.status == 200, "\(served)")
            let cut = try await slowAnswer()
            #expect(cut.hasPrefix("504"), "the slow one was cut: \(cut)")
            #expect(try await lab.logLine(containing: ["held endpoint 0 past the limit"]) != nil)
            // The gadget answers again once its 8 s are over (a vendor request waits for it), for the tests after.
            let awake = try await curl(lab, "-X POST '\(device)?request_type=0xc0&request=1&length=4&timeout_ms=10000'")
            #expect(awake.status == 200, "\(awake)")
        }

        /// Claiming a root hub's interface would detach the hub driver and drop every device
        /// on its bus; its port requests would reach devices the policy hides.
        @Test func hubsAreOutOfReach() async throws {
            let lab = try await Lab.shared.session()
            let before = try await lab.daemon.get("/v1/devices").object()["devices"] as? [[String: Any]] ?? []
            let rootHubs = before.compactMap { $0["id"] as? String }.filter { $0.hasPrefix("usb") }
            let hub = try #require(rootHubs.first, "root hubs are listed")
            let claim = try await lab.post("/v1/devices/\(hub)/interfaces/0/claim")
            #expect(problemMismatch(claim, status: 403, code: "interface-protected") == nil, "\(claim.text)")
            // GET_PORT_STATUS of port 1 (class, recipient other).
            let port = try await lab.post("/v1/devices/\(hub)/control?request_type=0xa3&request=0&index=1&length=4")
            #expect(problemMismatch(port, status: 403, code: "interface-protected") == nil, "\(port.text)")
            let after = try await lab.daemon.get("/v1/devices").object()["devices"] as? [[String: Any]] ?? []
            #expect(after.count == before.count, "every device is still there")
        }

        /// Made-up methods, each new, used to grow /metrics without bound; now they count as one label.
        @Test func madeUpMethodsDoNotGrowTheMetrics() async throws {
            let lab = try await Lab.shared.session()
            let before = try await lab.daemon.get("/metrics").body.count
            // Two hundred requests on one connection, each with a method never seen before.
            try await lab.run(
                """
                python3 - <<'PY'
                import socket
                s = socket.create_connection(("127.0.0.1", 8080))
                f = s.makefile("rb")
                for i in range(200):
                    method = "M%d%s" % (i, "X" * 40)
                    s.sendall(("%s /v1/devices/nope%d HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n" % (method, i)).encode())
                    length = 0
                    while True:
                        line = f.readline()
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                        if line in (b"\\r\\n", b""):
                            break
                    f.read(length)
                PY
                """)
            let metrics = try await lab.daemon.get("/metrics").text
            #expect(metrics.utf8.count - before < 4096, "grew by \(metrics.utf8.count - before) bytes")
            #expect(metrics.contains("method=\"other\""))
            #expect(!metrics.contains("nope1"), "paths are never labels")
        }

        /// A `%0a` in the path cannot write a line of its own into the log.
        @Test func aNewlineInThePathForgesNoLogLine() async throws {
            let lab = try await Lab.shared.session()
            let marker = "forged-\(UInt32.random(in: 0...UInt32.max))"
            let answer = try await curl(lab, "-g -H 'X-Request-Id: \(marker)' 'http://127.0.0.1:8080/v1/x%0a\(marker)%0d%1b[31m'")
            #expect(answer.status == 404)
            let line = try await lab.logLine(containing: [marker, "request"])
            #expect(line?.contains("\\n\(marker)") == true, "\(line ?? "no line")")
            let log = try await lab.daemonLog()
            #expect(!log.split(separator: "\n").contains { $0.hasPrefix(marker) }, "no line starts with the forged text")
            #expect(!log.contains("\u{1b}"), "no escape sequence reaches a terminal")
        }

        /// HEAD must have no effect: on a data route it is refused before any transfer.
        @Test func headPerformsNoTransfer() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let parts = ["usbhttpd_usb_transfers_total{", "type=\"bulk\"", "outcome=\"completed\""]
            let before = try await lab.metric(parts) ?? 0
            let head = try await lab.daemon.request("HEAD", "/v1/devices/\(id)/endpoints/\(endpoint)/data?length=512")
            #expect(head.status == 405 && head.header("Allow") == "GET")
            #expect(try await lab.metric(parts) ?? 0 == before, "no transfer ran")
        }

        /// A stream's buffers count against its client's share of usbfs memory (half the
        /// daemon's) and the daemon's: a greedy client past its own share is refused while an
        /// innocent one beside it still streams; past the daemon's share everyone is refused,
        /// before anything starts, and the running streams keep running (issue 24, class 4).
        @Test func theUsbfsSharesAreNeverExceeded() async throws {
            let lab = try await Lab.shared.session()
            let sourceSink = try await lab.deviceID(serial: LabSession.sourceSink)
            let loopback = try await lab.deviceID(serial: LabSession.loopback)
            try await lab.claimed(sourceSink)
            try await lab.claimed(loopback)
            let greedyIn = try await lab.endpoint(sourceSink, type: "bulk", direction: "in")
            let innocentIn = try await lab.endpoint(loopback, type: "bulk", direction: "in")
            let limit = try await lab.metric(["usbhttpd_usbfs_budget_bytes"]) ?? 0
            #expect(limit > 0, "the share is in /metrics")
            let share = Int(limit) / 2
            let megabytes = share / 1_048_576
            let held = try await lab.usbfsBytesInUse()
            func stream(_ id: String, _ endpoint: Int, transfers: Int) -> String {
                "/v1/devices/\(id)/endpoints/\(endpoint)/stream?transfers=\(transfers)&transfer_size=1048576"
            }
            // The greedy client (one address) takes its whole share with one slow stream.
            try await lab.run(
                "(timeout 30 curl -sN --interface 127.0.0.30 --limit-rate 50K -o /dev/null "
                    + "'http://127.0.0.1:8080\(stream(sourceSink, greedyIn, transfers: megabytes))&duration_ms=25000' > /dev/null 2>&1 & echo $! > \"$TMPDIR/greedy.pid\")")
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= held + Double(megabytes * 1_048_576) })
            let more = try await curl(
                lab, "--interface 127.0.0.30 -D - 'http://127.0.0.1:8080\(stream(sourceSink, greedyIn, transfers: 1))&max_bytes=512'")
            #expect(more.status == 503 && more.body.contains("usbfs-budget-exhausted") && more.body.contains("of your"), "\(more)")
            #expect(more.body.lowercased().contains("retry-after: 1"))
            // The innocent client beside it still streams, up to its own share.
            try await lab.run(
                "(timeout 30 curl -sN --interface 127.0.0.31 -o /dev/null "
                    + "'http://127.0.0.1:8080\(stream(loopback, innocentIn, transfers: megabytes))&duration_ms=25000' > /dev/null 2>&1 & echo $! > \"$TMPDIR/innocent.pid\")")
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= held + Double(2 * megabytes * 1_048_576) })
            // The daemon's share is full now: a third client is refused too, naming the daemon's.
            let third = try await curl(
                lab, "--interface 127.0.0.32 -D - 'http://127.0.0.1:8080\(stream(loopback, innocentIn, transfers: 1))&max_bytes=512'")
            #expect(third.status == 503 && third.body.contains("of the daemon's") && !third.body.contains("of your"), "\(third)")
            #expect(try await lab.usbfsBytesInUse() <= limit)
            try await lab.run("kill $(cat \"$TMPDIR/greedy.pid\") $(cat \"$TMPDIR/innocent.pid\")")
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 == held }, "all given back at the end")
            try await lab.released(loopback)
        }

        /// An allow rule by vendor shows a device, but its boot keyboard interface stays
        /// protected: claiming it would take the host's keyboard.
        @Test func aKeyboardInsideAnAllowedDeviceStaysProtected() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(vendor: 0x0627, product: 0x0001)
            let output = try await lab.run(
                """
                setsid \(LabSession.daemonBinary) --port 8097 --rule 'allow vendor_id=0x0627' > "$TMPDIR/keyboard.log" 2>&1 &
                pid=$!
                for i in $(seq 300); do curl -sf http://127.0.0.1:8097/readyz > /dev/null && break; sleep 0.1; done
                echo "listed=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8097/v1/devices/\(id))"
                curl -s -X POST http://127.0.0.1:8097/v1/devices/\(id)/interfaces/0/claim
                echo
                # Issue 24, class 1: the same keyboard reached in other encodings (bmRequestType,
                # bRequest, wValue, wIndex): each answer's status and code on a line.
                for q in \
                  'request_type=0x21&request=0x0a&value=0&index=0' \
                  'request_type=0x21&request=0x09&value=0x0200&index=0x0100' \
                  'request_type=0x40&request=1&index=0' \
                  'request_type=0x42&request=1&index=0x00' \
                  'request_type=0x42&request=1&index=0x81' \
                  'request_type=0x43&request=1&index=1' \
                  'request_type=0x60&request=1' \
                  'request_type=0x00&request=7&value=0x0100' \
                  'request_type=0x01&request=3&value=2'; do
                  printf '%s %s\n' "$q" "$(curl -s -X POST "http://127.0.0.1:8097/v1/devices/\(id)/control?$q" | grep -o '"code" : "[a-z-]*"')"
                done
                echo "descriptor=$(curl -s -o /dev/null -w '%{http_code}' -X POST 'http://127.0.0.1:8097/v1/devices/\(id)/control?request_type=0x80&request=6&value=0x0100&length=18')"
                kill $pid
                """)
            #expect(output.contains("listed=200"), "\(output)")
            #expect(output.contains("interface-protected") && output.contains("a HID boot keyboard"), "\(output)")
            // SET_IDLE, SET_REPORT with wIndex's high byte set, vendor to the device, to endpoint
            // 0, to the keyboard's endpoint, recipient "other": protected; the reserved type,
            // SET_DESCRIPTOR, SET_FEATURE(TEST_MODE) to an interface: refused; GET_DESCRIPTOR answered.
            let lines = output.split(separator: "\n").filter { $0.hasPrefix("request_type=") }
            #expect(lines.count == 9, "\(output)")
            for line in lines.prefix(6) { #expect(line.hasSuffix("\"code\" : \"interface-protected\""), "\(line)") }
            for line in lines.dropFirst(6) { #expect(line.hasSuffix("\"code\" : \"request-refused\""), "\(line)") }
            #expect(output.contains("descriptor=200"), "\(output)")
            // usbhid still has it.
            let driver = try await lab.run("readlink /sys/bus/usb/devices/\(id):1.0/driver")
            #expect(driver.contains("usbhid"), "\(driver)")
        }
    }
}
