import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The project's FunctionFS gadget (lab/gadget/ffs-gadget.c): stalls, halts, a silent
    /// interrupt endpoint, and every check made before a URB.
    @Suite struct GadgetTests {
        @Test func aHaltedEndpointStallsUntilTheHaltIsCleared() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let bulkIn = try await lab.endpoint(id, type: "bulk", direction: "in")
            #expect(try await lab.read(id, endpoint: bulkIn, length: 512).status == 200)

            let halt = try await lab.vendor(id, "out", request: Gadget.halt, value: Gadget.bulkInFile)
            #expect(halt.status == 200, "\(halt.text)")
            let stalled = try await lab.read(id, endpoint: bulkIn, length: 512)
            #expect(problemMismatch(stalled, status: 409, code: "usb-stall") == nil)
            #expect(stalled.header("X-USB-Transfer-Status") == "stall")

            let cleared = try await lab.post("/v1/devices/\(id)/endpoints/\(bulkIn)/clear-halt")
            #expect(cleared.status == 200, "\(cleared.text)")
            let after = try await lab.read(id, endpoint: bulkIn, length: 1024)
            #expect(after.status == 200 && after.body.count > 0, "\(after.text)")
            #expect(zip(after.body, after.body.dropFirst()).allSatisfy { UInt8((Int($0) + 1) % 251) == $1 })

            // The same for the OUT endpoint.
            let bulkOut = try await lab.endpoint(id, type: "bulk", direction: "out")
            _ = try await lab.vendor(id, "out", request: Gadget.halt, value: Gadget.bulkOutFile)
            let outStalled = try await lab.write(id, endpoint: bulkOut, data: [UInt8](repeating: 1, count: 512))
            #expect(problemMismatch(outStalled, status: 409, code: "usb-stall") == nil)
            #expect(try await lab.post("/v1/devices/\(id)/endpoints/\(bulkOut)/clear-halt").status == 200)
            #expect(try await lab.write(id, endpoint: bulkOut, data: [1, 2, 3]).status == 200)
        }

        @Test func aRequestTheDeviceRefusesIsAStallAndTheDeviceGoesOn() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.gadget)
            for direction in ["in", "out"] {
                let refused = try await lab.vendor(
                    id, direction, request: Gadget.refuse, length: direction == "in" ? 8 : nil)
                #expect(problemMismatch(refused, status: 409, code: "usb-stall") == nil, "\(direction)")
                #expect(refused.header("X-USB-Transfer-Status") == "stall")
            }
            let info = try await lab.vendor(id, "in", request: Gadget.info, length: 64)
            #expect(info.status == 200 && info.text == "usbhttpd-lab-gadget 1", "\(info.text)")
        }

        @Test func aSilentInterruptEndpointTimesOutThenDeliversWhatIsQueued() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            let started = ContinuousClock.now
            let silent = try await lab.read(id, endpoint: interrupt, length: 64, timeout: 300)
            #expect(problemMismatch(silent, status: 504, code: "usb-timeout") == nil)
            #expect(silent.header("X-USB-Transfer-Status") == "timed_out")
            #expect(silent.header("X-USB-Actual-Length") == "0")
            #expect(ContinuousClock.now - started >= .milliseconds(300))

            let queued = try await lab.vendor(id, "out", request: Gadget.interruptQueue, value: 5)
            #expect(queued.status == 200, "\(queued.text)")
            let packet = try await lab.read(id, endpoint: interrupt, length: 64, timeout: 2000)
            #expect(packet.status == 200, "\(packet.text)")
            #expect(packet.body == [0xa0, 0xa1, 0xa2, 0xa3, 0xa4])
        }

        @Test func controlRequestsToTheInterfaceAndEchoes() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let data = Array("echo through the interface".utf8)
            let set = try await lab.vendor(id, "out", request: Gadget.echoSet, recipient: "interface", data: data)
            #expect(set.status == 200 && set.actualLength == data.count, "\(set.text)")
            let get = try await lab.vendor(id, "in", request: Gadget.echoGet, length: 4096, recipient: "interface")
            #expect(get.body == data, "a short IN answer is a success with what came")
            let big = [UInt8](repeating: 0x5a, count: 4096)
            #expect(try await lab.vendor(id, "out", request: Gadget.echoSet, data: big).status == 200)
            #expect(try await lab.vendor(id, "in", request: Gadget.echoGet, length: 4096).body == big)
            let tooBig = try await lab.vendor(
                id, "out", request: Gadget.echoSet, data: [UInt8](repeating: 0, count: 4097))
            #expect(problemMismatch(tooBig, status: 413, code: "control-data-too-large") == nil)
        }

        @Test func everyCheckBeforeAURBSaysWhatIsWrong() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .released)
            let bulkIn = try await lab.endpoint(id, type: "bulk", direction: "in")
            let bulkOut = try await lab.endpoint(id, type: "bulk", direction: "out")

            let unclaimed = try await lab.read(id, endpoint: bulkIn, length: 512)
            #expect(problemMismatch(unclaimed, status: 409, code: "interface-not-claimed") == nil)
            let release = try await lab.daemon.request("DELETE", "/v1/devices/\(id)/interfaces/0/claim")
            #expect(problemMismatch(release, status: 409, code: "interface-not-claimed") == nil)

            let claim = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(claim.status == 200, "\(claim.text)")
            #expect(try claim.object()["kernel_driver_detached"] as? Bool == false)
            let again = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(problemMismatch(again, status: 409, code: "interface-claimed") == nil)
            let noInterface = try await lab.post("/v1/devices/\(id)/interfaces/5/claim")
            #expect(problemMismatch(noInterface, status: 404, code: "interface-not-found") == nil)
            let noAlt = try await lab.daemon.request("PUT", "/v1/devices/\(id)/interfaces/0/alt-setting?value=1")
            #expect(problemMismatch(noAlt, status: 404, code: "alt-setting-not-found") == nil)
            let alt0 = try await lab.daemon.request("PUT", "/v1/devices/\(id)/interfaces/0/alt-setting?value=0")
            #expect(alt0.status == 200, "\(alt0.text)")

            let wrongWay = try await lab.read(id, endpoint: bulkOut, length: 512)
            #expect(problemMismatch(wrongWay, status: 400, code: "wrong-endpoint-direction") == nil)
            let wrongWayOut = try await lab.write(id, endpoint: bulkIn, data: [1])
            #expect(problemMismatch(wrongWayOut, status: 400, code: "wrong-endpoint-direction") == nil)
            let absent = try await lab.read(id, endpoint: 0x8f, length: 512)
            #expect(problemMismatch(absent, status: 404, code: "endpoint-not-found") == nil)
            let control = try await lab.read(id, endpoint: 0x80, length: 8)
            #expect(problemMismatch(control, status: 400, code: "control-endpoint") == nil)
            let setConfiguration = try await lab.post(
                "/v1/devices/\(id)/control?direction=out&type=standard&request=9&value=1")
            #expect(problemMismatch(setConfiguration, status: 400, code: "use-dedicated-route") == nil)
            let noDevice = try await lab.read("9-9", endpoint: bulkIn, length: 8)
            #expect(problemMismatch(noDevice, status: 404, code: "device-not-found") == nil)

            let nothing = try await lab.read(id, endpoint: bulkIn, length: 0)
            #expect(problemMismatch(nothing, status: 400, code: "invalid-parameter") == nil)
            let rootHub = try await lab.post("/v1/devices/usb1/reset")
            #expect(problemMismatch(rootHub, status: 400, code: "root-hub") == nil, "\(rootHub.text)")

            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()
            #expect((claims["claims"] as? [[String: Any]])?.first?["alt_setting"] as? Int == 0)
            #expect(claims["configuration"] as? Int == 1)
        }

        /// Reads shorter than a packet of an endpoint that sends full packets: no overflow; the
        /// rest of the packet comes with the next reads, an unbroken pattern.
        @Test func partialReadsKeepTheRestOfThePacketForTheNextRead() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let bulkIn = try await lab.endpoint(id, type: "bulk", direction: "in")
            var bytes: [UInt8] = []
            for length in [10, 10, 1000, 512, 100] {
                let read = try await lab.read(id, endpoint: bulkIn, length: length)
                #expect(read.status == 200, "\(read.text)")
                bytes += read.body
            }
            let expected = 10 + 10 + 492 + 512 + 100
            #expect(bytes.count == expected, "the third read gets only what was kept")
            #expect(zip(bytes, bytes.dropFirst()).allSatisfy { UInt8((Int($0) + 1) % 251) == $1 }, "one unbroken pattern")
            // A clear halt drops what was kept: the next read starts on a new packet.
            #expect(try await lab.post("/v1/devices/\(id)/endpoints/\(bulkIn)/clear-halt").status == 200)
            let fresh = try await lab.read(id, endpoint: bulkIn, length: 512)
            #expect(fresh.body.count == 512)
        }
    }
}
