import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// `GET …/endpoints/{ep}/stream`: chunked bulk IN from the lab's devices.
    @Suite struct StreamTests {
        func streamPath(_ id: String, _ endpoint: Int, _ query: String) -> String {
            "/v1/devices/\(id)/endpoints/\(endpoint)/stream?\(query)"
        }

        /// curl in the guest: exit code, response headers and trailers, body size, and the
        /// python check `check` run on the body file (which prints ok).
        func curl(_ lab: LabSession, _ path: String, options: String = "", check: String) async throws -> String {
            try await lab.run(
                """
                curl -sN -H 'TE: trailers' \(options) -D "$TMPDIR/h" -o "$TMPDIR/b" 'http://127.0.0.1:8080\(path)'; echo "rc=$?"
                cat "$TMPDIR/h"; echo "size=$(wc -c < "$TMPDIR/b")"
                python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); print("ok" if (\(check)) else "bad")' "$TMPDIR/b"
                """)
        }

        @Test func theSourceSinkPatternArrivesByteForByteWithATrailer() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let output = try await curl(
                lab, streamPath(id, endpoint, "transfers=4&transfer_size=16384&max_bytes=4000000"),
                check: "len(b) == 4000000 and all(b[i] == (i % 512) % 63 for i in range(len(b)))")
            #expect(output.contains("rc=0"), "\(output)")
            #expect(output.contains("Transfer-Encoding: chunked"))
            #expect(output.contains("X-USB-Buffer-Source: zero-copy"))
            #expect(output.contains("X-USB-Stream-End: limit"), "a trailer says how it ended")
            #expect(output.contains("X-USB-Stream-Bytes: 4000000"))
            #expect(output.contains("size=4000000"))
            #expect(output.hasSuffix("ok\n"), "\(output.suffix(200))")
        }

        @Test func theGadgetStreamIsOneUnbrokenPattern() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let result = try await lab.daemon.get(streamPath(id, endpoint, "max_bytes=2097152&transfer_size=32768"))
            #expect(result.status == 200)
            #expect(result.body.count == 2_097_152)
            #expect(zip(result.body, result.body.dropFirst()).allSatisfy { UInt8((Int($0) + 1) % 251) == $1 })
        }

        @Test func aDurationEndsTheStreamCleanly() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let output = try await curl(
                lab, streamPath(id, endpoint, "duration_ms=300"), check: "all(b[i] == (i % 512) % 63 for i in range(len(b)))")
            #expect(output.contains("rc=0") && output.contains("X-USB-Stream-End: finished"), "\(output)")
            #expect(output.hasSuffix("ok\n"))
        }

        /// A device error in the middle: the body is cut (curl reports an incomplete
        /// transfer), the log says why, and the device works after a clear-halt.
        @Test func aHaltMidStreamCutsTheBodyAndIsLogged() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let streamsBefore = try await lab.openStreams("in")
            try await lab.run("rm -f \"$TMPDIR/halted.bin\"")
            async let streamed = lab.run(
                """
                curl -sN --limit-rate 2M -o "$TMPDIR/halted.bin" -H 'X-Request-Id: halted-stream' \
                  'http://127.0.0.1:8080\(streamPath(id, endpoint, "transfers=2&transfer_size=4096"))'; echo "rc=$?"
                """)
            #expect(try await lab.streamsActive("in", atLeast: streamsBefore + 1), "the stream runs before the halt")
            // Data reached the client (the answer has begun) before the halt.
            try await lab.run("for i in $(seq 200); do [ -s \"$TMPDIR/halted.bin\" ] && break; sleep 0.1; done")
            let halt = try await lab.vendor(id, "out", request: Gadget.halt, value: Gadget.bulkInFile)
            #expect(halt.status == 200, "\(halt.text)")
            let output = try await streamed
            #expect(output.contains("rc=18"), "curl: transfer closed with outstanding read data: \(output)")
            let log = try await lab.daemonLog()
            #expect(
                log.split(separator: "\n").contains { $0.contains("halted-stream") && $0.contains("stream ended early") && $0.contains("stall") },
                "the log says why")
            #expect(try await lab.post("/v1/devices/\(id)/endpoints/\(endpoint)/clear-halt").status == 200)
            #expect(try await lab.read(id, endpoint: endpoint, length: 512).status == 200)
        }

        /// A client that disconnects: every URB cancelled, the device usable at once.
        @Test func aClientThatHangsUpEndsTheStream() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            // A silent endpoint: the connection stays suspended, and the hang-up must still be seen.
            let output = try await lab.exec(
                """
                timeout 4 curl -sN -o /dev/null -H 'X-Request-Id: hung-stream' \
                  'http://127.0.0.1:8080\(streamPath(id, interrupt, "transfers=2&transfer_size=64"))'
                """)
            #expect(output.rc == 124)
            let closed = try await lab.logLine(containing: ["hung-stream", "stream closed"]) != nil
            #expect(closed, "the stream was closed when its client went away: \(output.stdout) \(output.stderr)")
            // Its URBs are gone: a queued packet goes to this read, not to them.
            #expect(try await lab.vendor(id, "out", request: Gadget.interruptQueue, value: 2).status == 200)
            let packet = try await lab.read(id, endpoint: interrupt, length: 64, timeout: 3000)
            #expect(packet.status == 200 && packet.body == [0xa0, 0xa1], "\(packet.text)")
        }

        @Test func streamsOnDifferentDevicesRunTogether() async throws {
            let lab = try await Lab.shared.session()
            let sourceSink = try await lab.deviceID(serial: LabSession.sourceSink)
            let gadget = try await lab.deviceID(serial: LabSession.gadget)
            try await lab.claimed(sourceSink)
            try await lab.claimed(gadget)
            let sourceSinkIn = try await lab.endpoint(sourceSink, type: "bulk", direction: "in")
            let gadgetIn = try await lab.endpoint(gadget, type: "bulk", direction: "in")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<3 {
                    group.addTask {
                        let result = try await lab.daemon.get(
                            streamPath(sourceSink, sourceSinkIn, "max_bytes=\(1_048_576 + round * 512)"))
                        #expect(result.body.count == 1_048_576 + round * 512)
                        #expect(result.body.enumerated().allSatisfy { $0.element == UInt8(($0.offset % 512) % 63) })
                    }
                    group.addTask {
                        let result = try await lab.daemon.get(streamPath(gadget, gadgetIn, "max_bytes=1048576"))
                        #expect(result.body.count == 1_048_576)
                        #expect(zip(result.body, result.body.dropFirst()).allSatisfy { UInt8((Int($0) + 1) % 251) == $1 })
                    }
                }
                try await group.waitForAll()
            }
        }

        /// A client that reads slowly holds the device back; the daemon's memory stays put.
        @Test func aSlowReaderKeepsMemoryBounded() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let output = try await lab.run(
                """
                pid=$(pgrep -f -- '--port 8080' | head -1)
                rss() { awk '/VmRSS/ { print $2 }' /proc/$pid/status; }
                before=$(rss)
                timeout 5 curl -sN --limit-rate 100K -o /dev/null 'http://127.0.0.1:8080\(streamPath(id, endpoint, ""))' &
                sleep 3; during=$(rss); wait
                echo "before=$before during=$during"
                """)
            let numbers = output.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            #expect(numbers.count == 2, "\(output)")
            if numbers.count == 2 {
                #expect(numbers[1] - numbers[0] < 16 * 1024, "RSS grew by \(numbers[1] - numbers[0]) KiB: \(output)")
            }
        }

        /// One client cannot take every slot of a device: its fifth stream there is refused while
        /// another client still gets one.
        @Test func oneClientCannotTakeEverySlotOfADevice() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let before = try await lab.openStreams("in")
            try await lab.run(
                "for i in 1 2 3 4; do timeout 20 curl -sN --interface 127.0.0.20 --limit-rate 20K -o /dev/null "
                    + "'http://127.0.0.1:8080\(streamPath(id, endpoint, "duration_ms=4000&transfers=1&transfer_size=512"))' "
                    + "> /dev/null 2>&1 & done")
            #expect(try await lab.streamsActive("in", atLeast: before + 4))
            let fifth = try await lab.exec(
                "curl -s --interface 127.0.0.20 -w '\\n%{http_code}' "
                    + "'http://127.0.0.1:8080\(streamPath(id, endpoint, "max_bytes=512"))'")
            #expect(fifth.stdout.hasSuffix("503") && fifth.stdout.contains("--max-client-streams-per-device"), "\(fifth.stdout)")
            let other = try await lab.exec(
                "curl -s --interface 127.0.0.21 -o /dev/null -w '%{http_code}' "
                    + "'http://127.0.0.1:8080\(streamPath(id, endpoint, "max_bytes=512"))'")
            #expect(other.stdout == "200", "another client is not held back")
            var count = try await lab.openStreams("in")
            for _ in 0..<150 where count > before {
                try await Task.sleep(for: .milliseconds(100))
                count = try await lab.openStreams("in")
            }
            #expect(count == before)
        }

        @Test func aNinthStreamOnOneDeviceWaitsItsTurn() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            // Eight slow readers, each from its own address (so that none is held back by the
            // per-client bound), hold the device's eight stream slots for a few seconds.
            try await lab.run(
                "for i in 2 3 4 5 6 7 8 9; do timeout 20 curl -sN --interface 127.0.0.$i --limit-rate 20K -o /dev/null "
                    + "'http://127.0.0.1:8080\(streamPath(id, endpoint, "duration_ms=6000&transfers=1&transfer_size=512"))' "
                    + "> /dev/null 2>&1 & done")
            var count = 0
            for _ in 0..<60 where count < 8 {
                try await Task.sleep(for: .milliseconds(100))
                count = try await lab.openStreams("in")
            }
            #expect(count == 8, "eight streams open")
            let ninth = try await lab.daemon.get(streamPath(id, endpoint, "max_bytes=512"))
            #expect(problemMismatch(ninth, status: 503, code: "too-many-streams") == nil, "\(ninth.text)")
            #expect(ninth.header("Retry-After") == "1")
            // Once they end, a slot is free again (and nothing is left open for the next test).
            for _ in 0..<150 where count > 0 {
                try await Task.sleep(for: .milliseconds(100))
                count = try await lab.openStreams("in")
            }
            #expect(count == 0)
            #expect(try await lab.daemon.get(streamPath(id, endpoint, "max_bytes=512")).status == 200)
        }

        static let badRequests: [(String, Int, String)] = [
            ("transfers=0", 400, "invalid-parameter"),
            ("transfers=33", 400, "invalid-parameter"),
            ("transfer_size=1000", 400, "invalid-transfer-size"),
            ("transfers=32&transfer_size=1048576", 400, "invalid-parameter"),
            ("max_bytes=0", 400, "invalid-parameter"),
            ("duration_ms=-5", 400, "invalid-parameter"),
            ("length=5", 400, "unknown-parameter"),
        ]

        @Test(arguments: badRequests)
        func badStreamsAreRefusedBeforeAnyURB(query: String, status: Int, code: String) async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            let result = try await lab.daemon.get(streamPath(id, endpoint, query))
            #expect(problemMismatch(result, status: status, code: code) == nil, "\(query)")
        }

        @Test func streamsNeedAClaimedINEndpoint() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let wrongWay = try await lab.daemon.get(streamPath(id, out, ""))
            #expect(problemMismatch(wrongWay, status: 400, code: "wrong-endpoint-direction") == nil)
            try await lab.released(id)
            let unclaimed = try await lab.daemon.get(streamPath(id, 0x81, ""))
            #expect(problemMismatch(unclaimed, status: 409, code: "interface-not-claimed") == nil)
        }
    }
}
