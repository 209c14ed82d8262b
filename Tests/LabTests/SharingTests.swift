import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Several clients and devices at once, and clients that go away.
    @Suite struct SharingTests {
        /// Two clients on one device: every transfer whole, nothing lost, nothing interleaved.
        @Test func twoClientsOnOneDeviceAreSerialized() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let bulkIn = try await lab.endpoint(id, type: "bulk", direction: "in")
            let bulkOut = try await lab.endpoint(id, type: "bulk", direction: "out")
            let before = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian

            let results = try await withThrowingTaskGroup(of: (sent: Int, reads: [[UInt8]]).self) { group in
                for client in 0..<2 {
                    group.addTask {
                        var sent = 0
                        var reads: [[UInt8]] = []
                        for round in 0..<10 {
                            let size = 1000 + client * 100 + round
                            let written = try await lab.write(id, endpoint: bulkOut, data: [UInt8](repeating: 7, count: size))
                            #expect(written.status == 200, "\(written.text)")
                            sent += written.actualLength ?? 0
                            let read = try await lab.read(id, endpoint: bulkIn, length: 2048)
                            #expect(read.status == 200, "\(read.text)")
                            reads.append(read.body)
                        }
                        return (sent, reads)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let after = try await lab.vendor(id, "in", request: Gadget.outCount, length: 8).littleEndian
            #expect(Int(after - before) == results.map(\.sent).reduce(0, +), "every byte sent arrived")
            for read in results.flatMap(\.reads) {
                #expect(!read.isEmpty)
                #expect(zip(read, read.dropFirst()).allSatisfy { UInt8((Int($0) + 1) % 251) == $1 }, "one piece of the stream")
            }
        }

        /// A transfer waiting on one device does not hold up another device, nor other
        /// endpoints of its own device.
        @Test func devicesWorkInParallel() async throws {
            let lab = try await Lab.shared.session()
            let gadget = try await lab.deviceID(serial: LabSession.gadget)
            let sourceSink = try await lab.deviceID(serial: LabSession.sourceSink)
            try await lab.claimed(gadget)
            let bulkIn = try await lab.endpoint(gadget, type: "bulk", direction: "in")

            let held = try await lab.usbfsBytesInUse()
            let slowStarted = ContinuousClock.now
            async let slow = lab.vendor(gadget, "in", request: Gadget.delayed, value: 3000, length: 4, timeout: 10000)
            // The slow request is in flight once its buffer (setup and 4 bytes) counts against usbfs.
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= held + 12 }, "the slow one runs")
            for _ in 0..<5 {
                let data = (0..<16).map { _ in UInt8.random(in: 0...255) }
                #expect(try await lab.vendor(sourceSink, "out", request: 0x5b, data: data).status == 200)
                #expect(try await lab.vendor(sourceSink, "in", request: 0x5c, length: 16).body == data)
            }
            let sameDevice = try await lab.read(gadget, endpoint: bulkIn, length: 512)
            #expect(sameDevice.status == 200, "a bulk read on the busy device")
            let othersDone = ContinuousClock.now - slowStarted
            let slowResult = try await slow
            let slowDone = ContinuousClock.now - slowStarted
            #expect(slowResult.status == 200 && slowResult.body.count == 4, "\(slowResult.text)")
            #expect(slowDone >= .milliseconds(3000))
            #expect(othersDone < .milliseconds(2900), "the other requests did not wait for the slow one")
        }

        /// A client that disconnects in the middle of a long transfer: the URB is cancelled
        /// and the endpoint works right after.
        @Test func aClientThatHangsUpHasItsTransferCancelled() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.gadget, .claimed)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            let requestID = "hangup-\(UInt32.random(in: 0...UInt32.max))"
            let connection = try await lab.readInFlight(
                id, endpoint: interrupt, query: "length=64&timeout_ms=60000", requestID: requestID)
            connection.close()

            #expect(
                try await lab.logLine(containing: ["transfer cancelled", requestID]) != nil,
                "the daemon's log tells of the cancelled transfer")

            // Had the URB stayed queued, this packet would go to it and the read would time out.
            #expect(try await lab.vendor(id, "out", request: Gadget.interruptQueue, value: 3).status == 200)
            let packet = try await lab.read(id, endpoint: interrupt, length: 64, timeout: 3000)
            #expect(packet.status == 200 && packet.body == [0xa0, 0xa1, 0xa2], "\(packet.text)")
        }
    }
}
