import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// `POST …/endpoints/{ep}/stream`: request bodies of any size to bulk OUT.
    @Suite struct StreamOutTests {
        @Test func aBodyOfAnySizeReachesTheGadgetWhole() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let before = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian
            // Three times the largest buffered body (1 MiB), and not a whole number of packets.
            let data = (0..<(3 << 20) + 7).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let sent = try await lab.post("/v1/devices/\(id)/endpoints/\(out)/stream?transfers=4&transfer_size=65536", body: data)
            #expect(sent.status == 200, "\(sent.text)")
            #expect(sent.actualLength == data.count)
            let after = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian
            #expect(Int(after - before) == data.count, "the gadget received every byte")
        }

        @Test func aChunkedUploadWorksToo() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let before = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian
            let output = try await lab.run(
                """
                head -c 2500000 /dev/urandom > "$TMPDIR/upload.bin"
                curl -s -H 'Transfer-Encoding: chunked' --data-binary @"$TMPDIR/upload.bin" \
                  'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(out)/stream'
                """)
            #expect(output.contains("\"actual_length\" : 2500000"), "\(output)")
            let after = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian
            #expect(after - before == 2_500_000)
        }

        /// SourceSink halts its OUT endpoint on a byte that breaks its pattern: the upload
        /// stops there with a stall and says how much got through.
        @Test func aStallStopsTheUploadAndSaysHowFarItGot() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            var data = SourceSinkTests.pattern(2 << 20)
            data[1 << 20] ^= 0xff
            let result = try await lab.post("/v1/devices/\(id)/endpoints/\(out)/stream?transfers=2&transfer_size=65536", body: data)
            #expect(problemMismatch(result, status: 409, code: "usb-stall") == nil)
            let through = Int(result.header("X-USB-Actual-Length") ?? "") ?? -1
            #expect(through >= 0 && through < 2 << 20, "\(through) bytes went through")
            #expect(try await lab.post("/v1/devices/\(id)/endpoints/\(out)/clear-halt").status == 200)
            #expect(try await lab.write(id, endpoint: out, data: SourceSinkTests.pattern(4096)).status == 200)
        }

        @Test func aClientThatHangsUpMidUploadStopsIt() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let output = try await lab.exec(
                """
                head -c 20000000 /dev/zero | timeout 5 curl -s --limit-rate 500K -H 'X-Request-Id: hung-upload' \
                  -X POST -T - 'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(out)/stream'
                echo "rc=$?"
                """)
            #expect(output.stdout.contains("rc=124"), "\(output.stdout)")
            let ended = try await lab.logLine(containing: ["hung-upload", "stream to the device ended early"]) != nil
            #expect(ended, "the upload was stopped when its client went away")
            #expect(try await lab.write(id, endpoint: out, data: [1, 2, 3]).status == 200, "the endpoint works at once")
        }

        /// The device takes nothing, every transfer of the upload waits on it, and the client
        /// leaves: the stream ends when the hang-up is seen, not at the transfers' timeout.
        @Test func anUploadWaitingOnARefusingDeviceEndsWhenItsClientLeaves() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            #expect(try await lab.vendor(id, "out", request: Gadget.pauseOut, value: 60_000).status == 200)
            let before = try await lab.openStreams("out")
            let held = try await lab.usbfsBytesInUse()
            try await lab.run(
                """
                head -c 262144 /dev/zero > "$TMPDIR/upload.bin"
                (curl -s -o /dev/null -H 'X-Request-Id: refused-upload' --data-binary @"$TMPDIR/upload.bin" \
                  'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(out)/stream?transfers=2&transfer_size=16384&timeout_ms=60000' \
                  > /dev/null 2>&1 & echo $! > "$TMPDIR/upload.pid")
                """)
            // Both transfers wait on the device.
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= held + 2 * 16384 })
            let left = ContinuousClock.now
            try await lab.run("kill -KILL $(cat \"$TMPDIR/upload.pid\")")
            var open = try await lab.openStreams("out")
            while open > before, ContinuousClock.now - left < .seconds(20) {
                try await Task.sleep(for: .milliseconds(50))
                open = try await lab.openStreams("out")
            }
            let took = ContinuousClock.now - left
            #expect(open == before, "the stream ended")
            #expect(took < .seconds(5), "within \(took) of the hang-up, not at the 60 s timeout")
            #expect(try await lab.logLine(containing: ["refused-upload", "stream to the device ended early"]) != nil)
            #expect(try await lab.usbfsBytesInUse() == held, "its buffers are given back")
            #expect(try await lab.vendor(id, "out", request: Gadget.pauseOut, value: 0).status == 200)
            #expect(try await lab.write(id, endpoint: out, data: [1, 2, 3]).status == 200, "the endpoint works at once")
        }

        /// With zlp=true, data that fills its last packet is followed by a zero-length packet:
        /// Loopback then ends the returned data with one too, and a longer read stops there.
        @Test func aZeroLengthPacketEndsAnUploadThatFillsItsLastPacket() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let `in` = try await lab.endpoint(id, type: "bulk", direction: "in")
            for _ in 0..<64 {
                guard try await lab.read(id, endpoint: `in`, length: 4096, timeout: 100).status == 200 else { break }
            }
            let data = (0..<2048).map { UInt8(truncatingIfNeeded: $0 * 7) }
            let sent = try await lab.post("/v1/devices/\(id)/endpoints/\(out)/stream?zlp=true&transfer_size=4096", body: data)
            #expect(sent.status == 200 && sent.actualLength == 2048, "\(sent.text)")
            let back = try await lab.read(id, endpoint: `in`, length: 4096, timeout: 2000)
            #expect(back.status == 200 && back.body == data, "\(back.text)")
        }

        static let badUploads: [(String, Int, String)] = [
            ("transfer_size=1000", 400, "invalid-transfer-size"),
            ("zlp=maybe", 400, "invalid-parameter"),
            ("transfers=40", 400, "invalid-parameter"),
            ("length=4", 400, "unknown-parameter"),
        ]

        @Test(arguments: badUploads)
        func badUploadsAreRefused(query: String, status: Int, code: String) async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let result = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(out)/stream?\(query)", body: [UInt8](repeating: 0, count: 200_000))
            #expect(problemMismatch(result, status: status, code: code) == nil, "\(query): \(result.text)")
        }
    }
}
