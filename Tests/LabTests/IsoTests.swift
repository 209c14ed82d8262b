import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Isochronous OUT on QEMU's emulated usb-audio, on the emulated xHCI (a real DMA host
    /// controller driver): interface 1 (audio streaming) has endpoint 0x01 only in alternate
    /// setting 1, where it takes 48 kHz stereo 16-bit audio, 192 bytes a millisecond.
    @Suite struct IsoTests {
        static let packet = 192

        /// The audio device's id and its streaming endpoint, with interface 1 claimed and set to
        /// `altSetting`.
        func audio(_ lab: LabSession, altSetting: Int = 1) async throws -> (id: String, endpoint: Int) {
            let listing = try await lab.daemon.get("/v1/devices").object()
            let devices = try #require(listing["devices"] as? [[String: Any]])
            let device = try #require(devices.first { $0["product"] as? String == "QEMU USB Audio" })
            let id = try #require(device["id"] as? String)
            try await lab.claimed(id, interface: 1)
            let set = try await lab.daemon.request(
                "PUT", "/v1/devices/\(id)/interfaces/1/alt-setting?value=\(altSetting)")
            #expect(set.status == 200, "alt-setting: \(set.text)")
            return (id, 0x01)
        }

        /// Zero-bandwidth setting 0 has no endpoint; the answer says which setting has it.
        @Test func theEndpointNeedsItsAlternateSetting() async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab, altSetting: 0)
            let refused = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(endpoint)/iso?packet_size=192", body: [UInt8](repeating: 0, count: 384))
            #expect(problemMismatch(refused, status: 409, code: "endpoint-not-in-alt-setting") == nil, "\(refused.text)")
            #expect(refused.text.contains("alt-setting?value=1"), "\(refused.text)")
            let streamed = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(endpoint)/stream", body: [UInt8](repeating: 0, count: 384))
            #expect(problemMismatch(streamed, status: 409, code: "endpoint-not-in-alt-setting") == nil, "\(streamed.text)")
            _ = try await audio(lab)
        }

        /// One URB of packets: every packet's outcome comes back, and the device took them all.
        @Test func oneTransferReportsEveryPacket() async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab)
            let samples = (0..<(Self.packet * 10)).map { UInt8(truncatingIfNeeded: $0) }
            for query in ["packet_size=192", "packet_lengths=" + Array(repeating: "192", count: 10).joined(separator: ",")] {
                let result = try await lab.post("/v1/devices/\(id)/endpoints/\(endpoint)/iso?\(query)", body: samples)
                #expect(result.status == 200, "\(query): \(result.text)")
                let answer = try result.object()
                let packets = try #require(answer["packets"] as? [[String: Any]])
                #expect(packets.count == 10)
                #expect(packets.allSatisfy { $0["status"] as? String == "completed" && $0["actual_length"] as? Int == 192 })
                #expect(answer["failed_packets"] as? Int == 0 && answer["actual_length"] as? Int == samples.count)
                #expect(result.header("X-USB-Iso-Failed-Packets") == "0")
            }
        }

        /// Five seconds of audio-rate data, streamed as one upload: 5000 packets in, not one failed
        /// or short, at the pace the device plays them.
        @Test func secondsOfAudioStreamWithoutAFailedPacket() async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab)
            let seconds = 5
            let audio = (0..<(Self.packet * 1000 * seconds)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let started = ContinuousClock.now
            let result = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(endpoint)/stream?packet_size=192&packets=32&transfers=4", body: audio)
            let elapsed = ContinuousClock.now - started
            #expect(result.status == 200, "\(result.text)")
            let answer = try result.object()
            #expect(answer["packets"] as? Int == 1000 * seconds, "\(result.text)")
            #expect(answer["failed_packets"] as? Int == 0, "\(result.text)")
            #expect(answer["actual_length"] as? Int == audio.count, "every packet taken whole: \(result.text)")
            print("iso: \(seconds) s of 48 kHz stereo audio streamed in \(elapsed)")
        }

        /// A client that hangs up mid-stream stops it: the URBs in flight are cancelled, the log
        /// says so, and the endpoint takes packets again at once. (The client sends slower than
        /// the device plays: data already in the socket's buffers is played before the hang-up
        /// shows, and at 192 KB/s a few megabytes of it take a while.)
        @Test func aClientThatHangsUpMidStreamStopsIt() async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab)
            let output = try await lab.exec(
                """
                head -c 2000000 /dev/zero | timeout 3 curl -s --limit-rate 100K -H 'X-Request-Id: hung-iso' -X POST -T - \
                  'http://127.0.0.1:8080/v1/devices/\(id)/endpoints/\(endpoint)/stream?packet_size=192'
                echo "rc=$?"
                """)
            #expect(output.stdout.contains("rc=124"), "\(output.stdout)")
            let ended = try await lab.logLine(containing: ["hung-iso", "isochronous stream to the device ended early"]) != nil
            #expect(ended, "the stream was stopped when its client went away")
            let again = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(endpoint)/iso?packet_size=192", body: [UInt8](repeating: 0, count: 384))
            #expect(again.status == 200 && (try? again.object()["failed_packets"] as? Int) == 0, "\(again.text)")
        }

        /// usb-audio takes only whole 192-byte frames: what it does not take is reported packet
        /// by packet (a completed packet with fewer bytes), not hidden.
        @Test func packetsTheDeviceDoesNotTakeAreReportedShort() async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab)
            let result = try await lab.post(
                "/v1/devices/\(id)/endpoints/\(endpoint)/iso?packet_lengths=192,100,192", body: [UInt8](repeating: 0, count: 484))
            #expect(result.status == 200, "\(result.text)")
            let packets = try #require(try result.object()["packets"] as? [[String: Any]])
            let actual = packets.compactMap { $0["actual_length"] as? Int }
            #expect(actual.count == 3 && actual[0] == 192 && actual[1] < 100 && actual[2] == 192, "\(result.text)")
            #expect(result.header("X-USB-Actual-Length") == String(actual.reduce(0, +)))
        }

        static let badRequests: [(String, String, Int, String)] = [
            ("POST", "iso?packet_size=4000", 400, "packet-too-large"),
            ("POST", "iso?packet_lengths=192,100", 400, "invalid-parameter"),  // 292 bytes, not the body's 384
            ("POST", "iso?packet_lengths=192,x", 400, "invalid-parameter"),
            ("POST", "iso?packet_size=1", 400, "invalid-packet-count"),  // 384 packets: more than one URB holds
            ("POST", "iso?packet_size=192&packet_lengths=192,192", 400, "conflicting-parameters"),
            ("POST", "iso?packets=2", 400, "unknown-parameter"),
            ("GET", "iso?packets=2", 400, "wrong-endpoint-direction"),
            ("POST", "data", 400, "wrong-endpoint-type"),
            ("POST", "stream?transfer_size=384", 400, "invalid-parameter"),
            ("POST", "stream?packets=129", 400, "invalid-parameter"),
            ("POST", "stream?packet_size=4000", 400, "packet-too-large"),
        ]

        @Test(arguments: badRequests)
        func badIsoRequestsAreRefused(method: String, route: String, status: Int, code: String) async throws {
            let lab = try await Lab.shared.session()
            let (id, endpoint) = try await audio(lab)
            let result = try await lab.daemon.request(
                method, "/v1/devices/\(id)/endpoints/\(endpoint)/\(route)",
                body: method == "POST" ? [UInt8](repeating: 0, count: 384) : nil)
            #expect(problemMismatch(result, status: status, code: code) == nil, "\(method) \(route): \(result.text)")
        }

        /// …/iso on a bulk endpoint says which route serves it.
        @Test func isoOnABulkEndpointIsRefused() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let result = try await lab.post("/v1/devices/\(id)/endpoints/\(out)/iso", body: [1, 2, 3])
            #expect(problemMismatch(result, status: 400, code: "wrong-endpoint-type") == nil, "\(result.text)")
            let `in` = try await lab.endpoint(id, type: "bulk", direction: "in")
            let stream = try await lab.daemon.get("/v1/devices/\(id)/endpoints/\(`in`)/stream?packets=4")
            #expect(problemMismatch(stream, status: 400, code: "invalid-parameter") == nil, "\(stream.text)")
        }
    }
}
