import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The kernel's SourceSink gadget (f_sourcesink, pattern 1): vendor requests 0x5b/0x5c
    /// write and read back a buffer; bulk IN sends packets whose byte i is i % 63; bulk OUT
    /// checks that same pattern (and halts on a wrong byte).
    @Suite struct SourceSinkTests {
        /// What SourceSink sends and expects: byte i of each 512-byte packet is i % 63.
        static func pattern(_ count: Int) -> [UInt8] {
            (0..<count).map { UInt8(($0 % 512) % 63) }
        }

        @Test func vendorRequestsRoundTripInPlainAndJSONForm() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.sourceSink)
            let data = (0..<64).map { _ in UInt8.random(in: 0...255) }
            let written = try await lab.vendor(id, "out", request: 0x5b, data: data)
            #expect(written.status == 200, "\(written.text)")
            #expect(written.actualLength == 64)
            #expect(written.header("X-USB-Transfer-Status") == "completed")
            let read = try await lab.vendor(id, "in", request: 0x5c, length: 64)
            #expect(read.status == 200 && read.contentType == "application/octet-stream")
            #expect(read.body == data)
            #expect(read.header("X-USB-Actual-Length") == "64")

            // The same in JSON form: base64 out, hex and base64 back.
            let other = (0..<32).map { UInt8($0 * 7 & 0xff) }
            let jsonOut = try await lab.post(
                "/v1/devices/\(id)/control",
                body: Array(
                    #"{"request_type":"0x40","request":91,"data_base64":"\#(Data(other).base64EncodedString())"}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(jsonOut.status == 200 && jsonOut.actualLength == 32, "\(jsonOut.text)")
            let jsonIn = try await lab.post(
                "/v1/devices/\(id)/control", body: Array(#"{"request_type":192,"request":92,"length":32}"#.utf8),
                headers: ["Content-Type": "application/json"])
            let answer = try jsonIn.object()
            #expect(answer["data_hex"] as? String == other.map { String(format: "%02x", $0) }.joined())
            #expect(answer["data_base64"] as? String == Data(other).base64EncodedString())
            #expect(answer["status"] as? String == "completed" && answer["requested_length"] as? Int == 32)
        }

        @Test func bulkInIsThePatternByteForByte() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            for length in [4096, 512, 65536] {
                let result = try await lab.read(id, endpoint: endpoint, length: length)
                #expect(result.status == 200, "\(result.text)")
                #expect(result.body.count == length)
                #expect(result.body == Self.pattern(length), "\(length) bytes are the SourceSink pattern")
            }
        }

        @Test func bulkOutIsAccepted() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "out")
            let sent = try await lab.write(id, endpoint: endpoint, data: Self.pattern(65536))
            #expect(sent.status == 200, "\(sent.text)")
            #expect(sent.actualLength == 65536)
            // A packet-filling write with a zero-length packet after it.
            let zlp = try await lab.write(id, endpoint: endpoint, data: Self.pattern(4096), query: "zlp=true")
            #expect(zlp.status == 200 && zlp.actualLength == 4096, "\(zlp.text)")
            // The sink checked every byte: a wrong one would have halted the endpoint.
            let after = try await lab.write(id, endpoint: endpoint, data: Self.pattern(4096))
            #expect(after.status == 200, "\(after.text)")
        }

        @Test func configurationCanBeUnsetAndSetAgain() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let held = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=0")
            #expect(problemMismatch(held, status: 409, code: "claims-held") == nil)
            try await lab.released(id)
            let missing = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=2")
            #expect(problemMismatch(missing, status: 404, code: "configuration-not-found") == nil)

            let unset = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=0")
            #expect(unset.status == 200, "\(unset.text)")
            #expect(try unset.object()["configuration"] is NSNull)
            #expect(try await lab.run("cat /sys/bus/usb/devices/\(id)/bConfigurationValue").trimmingCharacters(
                in: .whitespacesAndNewlines) == "")
            let unconfigured = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(problemMismatch(unconfigured, status: 409, code: "device-unconfigured") == nil)

            let set = try await lab.daemon.request("PUT", "/v1/devices/\(id)/configuration?value=1")
            #expect(set.status == 200, "\(set.text)")
            #expect(try set.object()["configuration"] as? Int == 1)
            #expect(try await lab.run("cat /sys/bus/usb/devices/\(id)/bConfigurationValue").trimmingCharacters(
                in: .whitespacesAndNewlines) == "1")
            // Usable again at once.
            try await lab.claimed(id)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            #expect(try await lab.read(id, endpoint: endpoint, length: 512).status == 200)
        }

        @Test func resetKeepsClaimsAndTheDeviceUsable() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let reset = try await lab.post("/v1/devices/\(id)/reset")
            #expect(reset.status == 200, "\(reset.text)")
            #expect(try reset.object()["reenumerated"] as? Bool == false)
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]]
            #expect(claims?.first?["interface"] as? Int == 0)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            #expect(try await lab.read(id, endpoint: endpoint, length: 512).status == 200)
            let data: [UInt8] = [1, 2, 3, 4]
            _ = try await lab.vendor(id, "out", request: 0x5b, data: data)
            #expect(try await lab.vendor(id, "in", request: 0x5c, length: 4).body == data)
        }
    
        /// A reset by the daemon or by another program is not an unplug: no event, the same
        /// address after. (While a port resets, sysfs `devnum` reads 0 for a few
        /// milliseconds; a read in that window is HotplugTests' `aDeviceBeingResetKeepsItsAddress`,
        /// over a fake sysfs: in the lab, 200 reads during 20 resets never hit it.)
        @Test func aResetIsNotAnUnplug() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.sourceSink)
            try await lab.run(
                "curl -sN 'http://127.0.0.1:8080/v1/events?id=\(id)' > \"$TMPDIR/reset-events.txt\" 2>&1 &"
                    + " echo $! > \"$TMPDIR/reset-events.pid\";"
                    + " for i in $(seq 200); do grep -q retry: \"$TMPDIR/reset-events.txt\" && break; sleep 0.1; done")
            let resets = try await lab.run(
                "d=/sys/bus/usb/devices/\(id); for i in 1 2 3 4 5; do usbreset $(cat $d/busnum)/$(cat $d/devnum); done")
            #expect(resets.components(separatedBy: "ok").count == 6, "\(resets)")
            let reset = try await lab.post("/v1/devices/\(id)/reset")
            #expect(reset.status == 200, "\(reset.text)")
            let detail = try await lab.daemon.get("/v1/devices/\(id)").object()
            let address = try await lab.run("cat /sys/bus/usb/devices/\(id)/devnum")
            #expect(detail["address"] as? Int == Int(address.trimmingCharacters(in: .whitespacesAndNewlines)))
            let text = try await lab.run(
                "kill $(cat \"$TMPDIR/reset-events.pid\"); cat \"$TMPDIR/reset-events.txt\"")
            #expect(InTheLab.HotplugTests.events(text).isEmpty, "no removal or arrival: \(text.suffix(400))")
        }
    }
}
