import Foundation
import Testing
import TestSupport

extension LabSession {
    /// lab/guest/replug.py in the guest: its one line of JSON output.
    @discardableResult
    func replug(_ arguments: String) async throws -> [String: Any] {
        let output: String
        do {
            output = try await run("python3 \(Self.root.path)/lab/guest/replug.py \(arguments)")
        } catch {
            // A replug that times out waiting for the daemon: show what its threads are doing.
            FileHandle.standardError.write(Data("the daemon's threads:\n\(try await daemonThreads())\n".utf8))
            throw error
        }
        return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
    }

    /// Every thread of the daemon but the devices' idle workers, with its stack (gdb in the guest).
    func daemonThreads() async throws -> String {
        try await run(
            "gdb -batch -p $(pgrep -o -x usbhttpd) -ex 'thread apply all bt 60' > \"$TMPDIR/gdb.txt\" 2>&1;"
                + " awk '/^Thread/ { keep = ($0 !~ /usb-[0-9u]/) } keep' \"$TMPDIR/gdb.txt\" | grep -E '^Thread|^#' | cut -c1-200 | head -300")
    }

    /// The daemon's open file descriptors and resident memory in KiB.
    func daemonUsage() async throws -> (fds: Int, targets: [String], rssKiB: Int, threads: [String]) {
        let usage = try await replug("usage $(pgrep -o -x usbhttpd)")
        return (
            try #require(usage["fds"] as? Int), usage["targets"] as? [String] ?? [], try #require(usage["rss_kib"] as? Int),
            usage["threads"] as? [String] ?? []
        )
    }
}

extension InTheLab {
    /// Devices coming and going (configfs UDC unbind and bind), as clients see it: events,
    /// waiting, ids that stay, and what happens to requests and streams in flight.
    @Suite struct HotplugTests {
        /// The SSE events in `text` as (event name, id, device id) triples.
        static func events(_ text: String) -> [(name: String, id: String, device: String)] {
            text.components(separatedBy: "\n\n").compactMap { block in
                var name = "", id = "", device = ""
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                    if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                    if line.hasPrefix("data: "),
                        let data = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any],
                        let summary = data["device"] as? [String: Any]
                    {
                        device = summary["id"] as? String ?? ""
                    }
                }
                return name.isEmpty ? nil : (name, id, device)
            }
        }

        @Test func fiftyReplugsAreFiftyRemovalsAndArrivalsInOrderWithNothingLeaked() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.loopback)
            let claim = "http://127.0.0.1:8080/v1/devices/\(id)/interfaces/0/claim"
            let follow =
                "curl -sN 'http://127.0.0.1:8080/v1/events?serial=\(LabSession.loopback)' > \"$TMPDIR/events.txt\" 2>&1 &"
                + " echo $! > \"$TMPDIR/events.pid\";"
                + " for i in $(seq 200); do grep -q retry: \"$TMPDIR/events.txt\" && break; sleep 0.1; done"
            let stopFollowing = "kill $(cat \"$TMPDIR/events.pid\"); cat \"$TMPDIR/events.txt\""
            // Ten cycles first, followed and claimed: what the first of these allocate for good
            // (Dispatch's timer, malloc's per-thread arenas for the device threads) is not a leak.
            try await lab.run(follow)
            try await lab.replug("cycles loopback 10 \(claim)")
            try await lab.run(stopFollowing)
            let before = try await lab.daemonUsage()

            try await lab.run(follow)
            let cycles = try await lab.replug("cycles loopback 50 \(claim)")
            #expect(cycles["ids"] as? [String] == [id], "the same port, the same id: \(cycles)")
            #expect((cycles["statuses"] as? [String: Int])?["200"] == 50, "each time claimed anew: \(cycles)")
            // Every event has reached the follower (100 of them: 50 removals, 50 arrivals).
            try await lab.run(
                "for i in $(seq 200); do [ $(grep -c '^data: ' \"$TMPDIR/events.txt\") -ge 100 ] && break; sleep 0.1; done")
            let text = try await lab.run(stopFollowing)

            let events = Self.events(text)
            #expect(events.count == 100, "\(events.count) events:\n\(text.suffix(600))")
            for (index, event) in events.enumerated() {
                #expect(event.name == (index % 2 == 0 ? "removed" : "added"), "event \(index): \(event)")
                #expect(event.device == id)
            }
            let sequences = events.compactMap { UInt64($0.id.split(separator: "-").last ?? "") }
            #expect(sequences.count == events.count && zip(sequences, sequences.dropFirst()).allSatisfy { $0 < $1 })

            let after = try await lab.daemonUsage()
            // Sockets come and go with clients (the tests' own keep-alive connections among
            // them); everything else must be exactly as before: the one open device, libusb's
            // and the server's own descriptors.
            func files(_ targets: [String]) -> [String] {
                targets.filter { !$0.hasPrefix("socket:") }.map { $0.hasPrefix("/dev/bus/usb/") ? "usbfs" : $0 }.sorted()
            }
            #expect(files(after.targets) == files(before.targets), "before: \(before.targets)\nafter: \(after.targets)")
            #expect(abs(after.fds - before.fds) <= 2, "file descriptors: \(before.fds) before, \(after.fds) after")
            // Every device has one thread while its session is open (usb-<id>), and the host's
            // own (usb-host, usb-events, usb-hotplug): a session that is never freed keeps one.
            // (Swift's and Dispatch's pool threads come and go on their own.)
            func usbThreads(_ names: [String]) -> [String] { names.filter { $0.hasPrefix("usb-") } }
            #expect(usbThreads(after.threads) == usbThreads(before.threads), "before: \(before.threads)\nafter: \(after.threads)")
            // Requests run on the device's thread, a new one after each plug; glibc gives threads
            // malloc arenas of their own (up to 8 per core), so memory moves by a few MiB as threads
            // come and go. A leak of a session or a transfer per cycle would be well over this.
            #expect(after.rssKiB - before.rssKiB < 4096, "memory: \(before.rssKiB) KiB before, \(after.rssKiB) KiB after")
            print("hotplug: 50 cycles in \(cycles["seconds"] ?? "?") s; fds \(before.fds) → \(after.fds); RSS \(before.rssKiB) → \(after.rssKiB) KiB")
        }

        /// The way back: a wait for the device on a port at another address than the one it
        /// had answers with the device enumerated again, never with the old instance, even when
        /// it starts before the device has left.
        @Test func waitingForTheWayBackGetsTheNewInstance() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.loopback)
            let before = try #require(try await lab.daemon.get("/v1/devices/\(id)").object()["address"] as? Int)
            let path = "/v1/wait?id=\(id)&not_address=\(before)&timeout_ms=60000"
            async let back = lab.daemon.get(path)
            try await lab.replug("cycles loopback 1")
            let answer = try await back
            #expect(answer.status == 200, "\(answer.text)")
            let devices = try answer.object()["devices"] as? [[String: Any]] ?? []
            #expect(devices.count == 1 && devices.first?["id"] as? String == id, "\(devices)")
            let after = try #require(devices.first?["address"] as? Int)
            #expect(after != before, "enumerated again: \(before) -> \(after)")
            let stale = try await lab.daemon.request(
                "GET", "/v1/devices/\(id)/claims", headers: ["X-USB-Device-Address": "\(before)"])
            #expect(problemMismatch(stale, status: 410, code: "device-reenumerated") == nil, "\(stale.text)")
        }

        @Test func aReconnectingClientGetsTheEventsItMissed() async throws {
            let lab = try await Lab.shared.session()
            let first = try await lab.run(
                "curl -sN -m 4 'http://127.0.0.1:8080/v1/events?serial=\(LabSession.gadget)&present=true'; true")
            let present = try #require(Self.events(first).last, "\(first)")
            #expect(present.name == "present")
            try await lab.replug("cycles ffs 1")
            let resumed = try await lab.run(
                "curl -sN -m 4 -H 'Last-Event-ID: \(present.id)' 'http://127.0.0.1:8080/v1/events?serial=\(LabSession.gadget)'; true"
            )
            #expect(Self.events(resumed).map(\.name) == ["removed", "added"], "\(resumed)")
        }

        @Test func waitAnswersWhenTheGadgetIsPluggedAndWhenItIsGone() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.gadget)
            // Whether the wait starts before the change or after it, it answers (at once if after);
            // waiting on a change is unit-tested (EventRoutesTests).
            async let gone = lab.daemon.get("/v1/wait?serial=\(LabSession.gadget)&for=absent&timeout_ms=60000")
            try await lab.replug("unplug ffs")
            #expect(try await gone.status == 200)

            let unplugged = try await lab.daemon.get("/v1/devices/\(id)")
            #expect(problemMismatch(unplugged, status: 410, code: "device-gone") == nil, "\(unplugged.text)")
            let bySerial = try await lab.daemon.get("/v1/devices/serial:\(LabSession.gadget)")
            #expect(problemMismatch(bySerial, status: 404, code: "device-not-found") == nil)

            async let back = lab.daemon.get("/v1/wait?serial=\(LabSession.gadget)&timeout_ms=60000")
            try await lab.replug("plug ffs")
            let answer = try await back
            #expect(answer.status == 200 && answer.text.contains("\"id\" : \"\(id)\""), "\(answer.text)")
            #expect(try await lab.daemon.get("/v1/devices/serial:\(LabSession.gadget)").status == 200)
        }

        @Test func unpluggedDuringAControlLoopEveryRequestEndsCleanly() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.sourceSink)
            // GET_DESCRIPTOR (device) in a loop from the guest while the device goes.
            let script = """
                import json, threading, time, urllib.request, urllib.error
                url = "http://127.0.0.1:8080/v1/devices/\(id)/control?direction=in&type=standard&request=6&value=0x100&length=18&timeout_ms=2000"
                statuses, slowest, stop = {}, 0.0, time.monotonic() + 6
                while time.monotonic() < stop:
                    began = time.monotonic()
                    try:
                        status = urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).status
                    except urllib.error.HTTPError as error:
                        status = error.code
                    slowest = max(slowest, time.monotonic() - began)
                    statuses[status] = statuses.get(status, 0) + 1
                print(json.dumps({"statuses": statuses, "slowest": slowest}))
                """
            try await lab.run("cat > \"$TMPDIR/loop.py\" <<'EOF'\n\(script)\nEOF")
            let control = ["usbhttpd_usb_transfers_total{", "type=\"control\"", "outcome=\"completed\""]
            let before = try await lab.metric(control) ?? 0
            try await lab.run("python3 \"$TMPDIR/loop.py\" > \"$TMPDIR/loop.json\" 2>&1 & echo $! > \"$TMPDIR/loop.pid\"")
            // The loop runs (requests answered) before the device goes.
            #expect(try await lab.waitForMetric(control) { $0 >= before + 10 }, "the control loop is running")
            try await lab.replug("unplug sourcesink")
            try await lab.run("while kill -0 $(cat \"$TMPDIR/loop.pid\") 2>/dev/null; do sleep 0.2; done")
            try await lab.replug("plug sourcesink")
            let output = try await lab.run("cat \"$TMPDIR/loop.json\"")
            let result = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
            let statuses = try #require(result["statuses"] as? [String: Int])
            #expect(Set(statuses.keys).isSubset(of: ["200", "410"]), "\(statuses)")
            #expect((statuses["200"] ?? 0) > 0 && (statuses["410"] ?? 0) > 0, "\(statuses)")
            #expect((result["slowest"] as? Double ?? 99) < 3, "no request hung: \(result)")

            let again = try await lab.post("/v1/devices/\(id)/control?direction=in&type=standard&request=6&value=0x100&length=18")
            #expect(again.status == 200 && again.body.count == 18, "the same id works once it is back: \(again.text)")
        }

        @Test func unpluggedMidStreamTheStreamEndsIncompleteAndTheLogSaysWhy() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let streamsBefore = try await lab.openStreams("in")
            try await lab.run(
                "(curl -sN -o \"$TMPDIR/s.bin\" 'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(endpoint)/stream'; echo \"rc=$?\" > \"$TMPDIR/s.rc\") > /dev/null 2>&1 &"
            )
            #expect(try await lab.streamsActive("in", atLeast: streamsBefore + 1), "the stream runs before the unplug")
            try await lab.run("for i in $(seq 200); do [ -s \"$TMPDIR/s.bin\" ] && break; sleep 0.1; done")  // bytes came
            try await lab.replug("unplug sourcesink")
            let ended = try await lab.run(
                "for i in $(seq 100); do [ -s \"$TMPDIR/s.rc\" ] && break; sleep 0.1; done; cat \"$TMPDIR/s.rc\"; wc -c < \"$TMPDIR/s.bin\"")
            try await lab.replug("plug sourcesink")
            #expect(ended.hasPrefix("rc=18") || ended.hasPrefix("rc=56"), "curl reports an incomplete transfer: \(ended)")
            let bytes = Int(ended.split(separator: "\n").last.map(String.init) ?? "") ?? 0
            #expect(bytes > 0, "data came before the unplug")
            let log = try await lab.daemonLog()
            let line = log.split(separator: "\n").last { $0.contains("stream ended early") } ?? ""
            // The kernel may see the gadget's endpoints go before the device itself: dummy_hcd
            // then ends the URBs in flight with -EPROTO (a transfer error) rather than -ESHUTDOWN.
            #expect(
                line.contains("no_device after") || line.contains("LIBUSB_ERROR_NO_DEVICE after") || line.contains("end=error after"),
                "the log says why: \(line)")

            // Back on the same port: the same id streams again (a new claim: the old one went with the device).
            try await lab.claimed(id)
            let again = try await lab.daemon.get("/v1/devices/\(id)/endpoints/\(endpoint)/stream?max_bytes=65536")
            #expect(again.status == 200 && again.body.count == 65536)
        }

        /// Where netlink is refused: the same events from inotify on /dev/bus/usb, or from
        /// polling. A second daemon on another port, following only.
        @Test(arguments: ["inotify", "polling"])
        func theFallbackSourcesSeeTheSameChanges(source: String) async throws {
            let lab = try await Lab.shared.session()
            let port = source == "inotify" ? 8091 : 8092
            try await lab.run(
                "setsid \(LabSession.daemonBinary) --port \(port) --hotplug \(source) > \"$TMPDIR/\(source).log\" 2>&1 &"
                    + " echo $! > \"$TMPDIR/\(source).pid\"")
            // Wait for the daemon to listen and for its feed to be open (the feed's first
            // line is `retry:`), not a fixed time: a loaded CI machine took longer than 2 s.
            try await lab.run(
                "for i in $(seq 200); do curl -sf http://127.0.0.1:\(port)/readyz > /dev/null && break; sleep 0.1; done")
            try await lab.run(
                "curl -sN 'http://127.0.0.1:\(port)/v1/events?serial=\(LabSession.gadget)' > \"$TMPDIR/\(source).events\" 2>&1 &"
                    + " echo $! > \"$TMPDIR/\(source).curl\";"
                    + " for i in $(seq 200); do grep -q retry: \"$TMPDIR/\(source).events\" && break; sleep 0.1; done")
            // Polling sees a device only if it stays longer than a poll (1 s); inotify rescans
            // every 20 ms after a change.
            try await lab.run("HOLD=\(source == "polling" ? "1.5" : "0.1") python3 \(LabSession.root.path)/lab/guest/replug.py cycles ffs \(source == "polling" ? 2 : 3)")
            // Until the feed has told of every change (the last rescan may come a poll later).
            let expectedCount = (source == "polling" ? 2 : 3) * 2
            try await lab.run(
                "for i in $(seq 100); do [ $(grep -c '^event: ' \"$TMPDIR/\(source).events\") -ge \(expectedCount) ] && break; sleep 0.1; done")
            let text = try await lab.run(
                "kill $(cat \"$TMPDIR/\(source).curl\") $(cat \"$TMPDIR/\(source).pid\"); cat \"$TMPDIR/\(source).events\"")
            let log = try await lab.run("cat \"$TMPDIR/\(source).log\"")
            #expect(log.contains("usb.hotplug.source=\(source)"), "\(log)")
            let expected = Array(repeating: ["removed", "added"], count: source == "polling" ? 2 : 3).flatMap { $0 }
            #expect(Self.events(text).map(\.name) == expected, "\(text)\n\(log)")
        }
    }
}
