import Foundation
import Testing
import TestSupport

extension LabSession {
    /// The daemon's port on this machine (forwarded into the lab).
    var daemonPort: Int { Int(daemon.base.split(separator: ":").last ?? "") ?? 0 }

    /// A URB channel on device `id`, its HELLO read.
    func channel(_ id: String, headers: [String: String] = [:]) async throws -> (TestWebSocket, URBWire.Hello) {
        let socket = try await TestWebSocket(port: daemonPort, path: "/v1/devices/\(id)/urb", headers: headers)
        #expect(socket.status == 101, "\(socket.headers)")
        let first = try #require(try await socket.message())
        return (socket, try #require(URBWire.Hello(first)))
    }
}

extension TestWebSocket {
    func complete(within seconds: Double = 20) async throws -> URBWire.Complete {
        let message = try #require(try await message(within: seconds), "a COMPLETE")
        return try #require(URBWire.Complete(message), "\(message.prefix(32))")
    }

    func result(within seconds: Double = 20) async throws -> URBWire.Result {
        let message = try #require(try await message(within: seconds), "a RESULT")
        return try #require(URBWire.Result(message), "\(message.prefix(32))")
    }

    /// An OPERATION that must succeed: its value.
    @discardableResult
    func operation(_ op: URBWire.Op, a: Int = 0, b: Int = 0, id: Int = 1000) async throws -> Int {
        try send(URBWire.operation(op, id: id, a: a, b: b))
        let result = try await result()
        #expect(result.error == 0 && result.id == id, "\(op): \(result.error) \(result.reason)")
        return result.value
    }
}

extension InTheLab {
    /// The URB channel on the lab's devices, through the daemon's real USB stack: every message
    /// kind, many transfers in flight, cancels and timeouts keeping their bytes, a hang-up and an
    /// unplug leaving nothing held, refusals per message, and a frame fuzzer.
    @Suite struct URBChannelLabTests {
        /// The FunctionFS gadget's endpoints: interrupt IN (silent until queued), bulk IN (byte i
        /// is i % 251), bulk OUT (counted).
        static func gadget(_ lab: LabSession) async throws -> (id: String, interrupt: Int, bulkIn: Int, bulkOut: Int) {
            let id = try await lab.deviceID(serial: LabSession.gadget)
            try await lab.released(id)
            return (
                id, try await lab.endpoint(id, type: "interrupt", direction: "in"),
                try await lab.endpoint(id, type: "bulk", direction: "in"), try await lab.endpoint(id, type: "bulk", direction: "out")
            )
        }

        /// A vendor request to the gadget's interface 0 (OUT, no data): queue an interrupt packet, halt.
        static func vendorOut(_ request: Int, value: Int, id: Int) -> [UInt8] {
            URBWire.submit(.control, endpoint: 0, id: id, length: 0, setup: URBWire.setup(0x41, UInt8(request), value: value, length: 0))
        }

        @Test func everyKindOfMessageOnTheLabsGadget() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, bulkIn, bulkOut) = try await Self.gadget(lab)
            let (socket, hello) = try await lab.channel(id)
            #expect(hello.device == id && hello.version == 1 && hello.speed == 3 && hello.configuration == 1)
            #expect(try await socket.operation(.getConfiguration) == 1)
            #expect(try await socket.operation(.kernelDriverActive, a: 0) == 0)
            #expect(try await socket.operation(.claim, a: 0, b: 1) == 0)
            // Control IN and OUT, to the interface.
            try socket.send(URBWire.submit(.control, endpoint: 0, id: 1, length: 64, setup: URBWire.setup(0xc1, 0x01, length: 64)))
            let info = try await socket.complete()
            #expect(info.status == 0 && String(decoding: info.rest, as: UTF8.self) == "usbhttpd-lab-gadget 1")
            let echo = Array("over the channel".utf8)
            try socket.send(
                URBWire.submit(.control, endpoint: 0, id: 2, length: echo.count, setup: URBWire.setup(0x41, 0x02, length: echo.count), data: echo))
            #expect(try await socket.complete().actualLength == echo.count)
            try socket.send(URBWire.submit(.control, endpoint: 0, id: 3, length: 64, setup: URBWire.setup(0xc1, 0x03, length: 64)))
            #expect(try await socket.complete().rest == echo)
            // A request the device refuses: a stall, and the channel goes on.
            try socket.send(URBWire.submit(.control, endpoint: 0, id: 4, length: 8, setup: URBWire.setup(0xc1, 0x10, length: 8)))
            #expect(try await socket.complete().status == URBWire.Status.stall.code)
            // Bulk IN: the counter pattern (the gadget writes at most about 16 KiB at a time, ending
            // each with a short packet), going on from wherever its stream is; bulk OUT: counted.
            try socket.send(URBWire.submit(.bulk, endpoint: UInt8(bulkIn), id: 5, length: 65536, timeout: 5000))
            let read = try await socket.complete()
            #expect(read.status == 0 && read.actualLength > 0 && read.rest.count == read.actualLength)
            #expect((1..<read.rest.count).allSatisfy { read.rest[$0] == UInt8((Int(read.rest[$0 - 1]) + 1) % 251) })
            let data = [UInt8](repeating: 0xa5, count: 100_000)
            try socket.send(URBWire.submit(.bulk, endpoint: UInt8(bulkOut), id: 6, length: data.count, timeout: 5000, data: data))
            #expect(try await socket.complete().actualLength == data.count)
            // Interrupt: a queued packet of 7 bytes.
            try socket.send(Self.vendorOut(0x20, value: 7, id: 7))
            #expect(try await socket.complete().status == 0)
            try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: 8, length: 64, timeout: 5000))
            #expect(try await socket.complete().actualLength == 7)
            // A halted endpoint stalls; CLEAR_HALT mends it.
            try socket.send(Self.vendorOut(0x21, value: 2, id: 9))
            #expect(try await socket.complete().status == 0)
            try socket.send(URBWire.submit(.bulk, endpoint: UInt8(bulkIn), id: 10, length: 512, timeout: 5000))
            #expect(try await socket.complete().status == URBWire.Status.stall.code)
            try await socket.operation(.clearHalt, a: bulkIn)
            try socket.send(URBWire.submit(.bulk, endpoint: UInt8(bulkIn), id: 11, length: 512, timeout: 5000))
            #expect(try await socket.complete().status == 0)
            try await socket.operation(.altSetting, a: 0, b: 0)
            try await socket.operation(.release, a: 0)
            try socket.sendRaw(TestWebSocket.frame(8, [0x03, 0xe8]))
            #expect(try await socket.receive()?.closeCode == 1000)
        }

        @Test func thirtyTwoReadsInFlightOnOneEndpointCompleteInOrder() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, _, _) = try await Self.gadget(lab)
            let (socket, _) = try await lab.channel(id)
            try await socket.operation(.claim, a: 0, b: 1)
            for index in 1...32 { try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: index, length: 64)) }
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= 32 * 64 }, "all in flight")
            // Packets of 1…32 bytes: each read gets the next, in the order they were submitted.
            for length in 1...32 { try socket.send(Self.vendorOut(0x20, value: length, id: 100 + length)) }
            var reads: [Int: Int] = [:]
            var order: [Int] = []
            while reads.count < 32 {
                let done = try await socket.complete()
                if done.id <= 32 {
                    reads[done.id] = done.actualLength
                    order.append(done.id)
                }
            }
            #expect(order == Array(1...32))
            #expect((1...32).allSatisfy { reads[$0] == $0 })
            socket.connection.close()
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 == 0 })
        }

        @Test func aCancelAmongManyAndATimeoutKeepTheBytesThatCame() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, _, _) = try await Self.gadget(lab)
            let (socket, _) = try await lab.channel(id)
            try await socket.operation(.claim, a: 0, b: 1)
            for index in 1...4 { try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: index, length: 64)) }
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= 4 * 64 })
            try socket.send(URBWire.cancel(id: 3))
            let cancelled = try await socket.complete()
            #expect(cancelled.id == 3 && cancelled.status == URBWire.Status.cancelled.code)
            for index in 1...3 { try socket.send(Self.vendorOut(0x20, value: 10 + index, id: 100 + index)) }
            var got: [Int: Int] = [:]
            while got.count < 6 {
                let done = try await socket.complete()
                got[done.id] = done.actualLength
            }
            #expect(got == [1: 11, 2: 12, 4: 13, 101: 0, 102: 0, 103: 0], "the others went on")
            // A read of two packets' room that gets one full packet: it times out with its 64 bytes.
            try socket.send(Self.vendorOut(0x20, value: 64, id: 200))
            #expect(try await socket.complete().status == 0)
            try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: 201, length: 128, timeout: 500))
            let timedOut = try await socket.complete()
            #expect(timedOut.status == URBWire.Status.timedOut.code && timedOut.actualLength == 64 && timedOut.rest.count == 64)
            try await socket.operation(.release, a: 0)
        }

        @Test func aHangUpWithTransfersInFlightGivesEverythingBack() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, _, _) = try await Self.gadget(lab)
            let (socket, _) = try await lab.channel(id)
            try await socket.operation(.claim, a: 0, b: 1)
            for index in 1...8 { try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: index, length: 64)) }
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= 8 * 64 })
            socket.connection.close()
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 == 0 }, "every URB back")
            let released = try await lab.logLine(containing: ["URB channel closed", "usb.interfaces_released=[0]"])
            #expect(released != nil)
            let deadline = ContinuousClock.now + .seconds(10)
            var claims: [[String: Any]] = [[:]]
            while !claims.isEmpty && ContinuousClock.now < deadline {
                claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]] ?? []
            }
            #expect(claims.isEmpty, "its claim released")
        }

        @Test func anUnpluggedDeviceCompletesItsTransfersThenSaysItLeftAndCameBack() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, _, _) = try await Self.gadget(lab)
            let (socket, hello) = try await lab.channel(id)
            try await socket.operation(.claim, a: 0, b: 1)
            for index in 1...3 { try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: index, length: 64)) }
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 >= 3 * 64 })
            try await lab.replug("unplug ffs")
            var ids: Set<Int> = []
            var gone: URBWire.Event?
            while gone == nil {
                let message = try #require(try await socket.message(within: 20), "messages until the device is gone")
                if let done = URBWire.Complete(message) {
                    // NO_DEVICE, or ERROR when the host controller failed the URB before the hub
                    // saw the device leave (dummy_hcd: -EPROTO once the gadget's endpoint is gone),
                    // as a native libusb program would see it too.
                    #expect([URBWire.Status.noDevice.code, URBWire.Status.error.code].contains(done.status), "\(done.status)")
                    ids.insert(done.id)
                } else {
                    gone = URBWire.Event(message)
                }
            }
            #expect(ids == [1, 2, 3], "every transfer completed before the event")
            #expect(gone?.event == 1 && gone?.address == hello.address)
            try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: 4, length: 64))
            #expect(try await socket.complete().status == URBWire.Status.noDevice.code)
            try await lab.replug("plug ffs")
            let next = try #require(try await socket.message(within: 20))
            let back = try #require(URBWire.Event(next))
            #expect(back.event == 2 && back.address != hello.address)
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 == 0 })
        }

        @Test func everyMessageIsJudgedAsItsRESTRequest() async throws {
            let lab = try await Lab.shared.session()
            let (id, interrupt, _, _) = try await Self.gadget(lab)
            let (socket, _) = try await lab.channel(id)
            // Refused control requests, in any form.
            try socket.send(URBWire.submit(.control, endpoint: 0, id: 1, length: 0, setup: URBWire.setup(0x00, 0x05, value: 99, length: 0)))
            let address = try await socket.complete()
            #expect(address.error == -3 && address.reason.hasPrefix("400 request-refused:"), "\(address.reason)")
            try socket.send(URBWire.submit(.control, endpoint: 0, id: 2, length: 0, setup: URBWire.setup(0x01, 0x0b, value: 1, length: 0)))
            #expect(try await socket.complete().reason.hasPrefix("400 use-dedicated-route:"))
            // An endpoint of an interface nobody claimed.
            try socket.send(URBWire.submit(.interrupt, endpoint: UInt8(interrupt), id: 3, length: 64))
            #expect(try await socket.complete().reason.hasPrefix("409 interface-not-claimed:"))
            // Another client's lease.
            let lease = try await lab.takeLease(id, "ttl_ms=30000")
            try socket.send(URBWire.operation(.claim, id: 4, a: 0, b: 1))
            let leased = try await socket.result()
            #expect(leased.error == -6 && leased.reason.hasPrefix("423 lease-held:"), "\(leased.reason)")
            try socket.send(URBWire.operation(.useLease, id: 5) + Array(lease.token.utf8))
            #expect(try await socket.result().error == 0)
            try await socket.operation(.claim, a: 0, b: 1, id: 6)
            try await socket.operation(.release, a: 0, id: 7)
            let released = try await lab.daemon.request("DELETE", "/v1/leases/\(lease.id)", headers: ["X-USB-Lease": lease.token])
            #expect(released.status == 200)
        }

        @Test func aFrameFuzzerHurtsNothingAndOthersAreServed() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .released)
            var generator = SystemRandomNumberGenerator()
            var sent = 0
            for _ in 0..<30 {
                let socket = try await TestWebSocket(port: lab.daemonPort, path: "/v1/devices/\(id)/urb")
                var burst: [UInt8] = []
                for _ in 0..<100 {
                    var message: [UInt8]
                    switch Int.random(in: 0..<5, using: &generator) {
                    case 0: message = (0..<Int.random(in: 0..<48, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    case 1:
                        message = URBWire.submit(
                            [.control, .bulk, .interrupt, .isochronous].randomElement(using: &generator)!,
                            endpoint: [0x00, 0x81, 0x01, 0x82, 0x02].randomElement(using: &generator)!,
                            id: Int.random(in: 0..<6, using: &generator), length: Int.random(in: 0..<600, using: &generator),
                            timeout: 200, setup: Bool.random(using: &generator) ? URBWire.setup(0xc0, 0x5c, length: 8) : nil)
                    case 2:
                        message = URBWire.operation(
                            [.claim, .release, .altSetting, .clearHalt, .kernelDriverActive, .getConfiguration].randomElement(using: &generator)!,
                            id: 1, a: Int.random(in: -1..<3, using: &generator))
                    case 3: message = URBWire.cancel(id: Int.random(in: 0..<6, using: &generator))
                    default: message = URBWire.submit(.bulk, endpoint: 0x81, id: 7, length: 1 << 21)  // oversized
                    }
                    if Bool.random(using: &generator), !message.isEmpty {
                        message.removeLast(Int.random(in: 1...message.count, using: &generator))
                    }
                    burst += TestWebSocket.frame(Bool.random(using: &generator) ? 2 : [0, 1, 3, 9].randomElement(using: &generator)!, message)
                    sent += 1
                }
                try? socket.sendRaw(burst)
                _ = try? await socket.receive(within: 0.2)
                socket.connection.close()
            }
            print("URB channel fuzzer: \(sent) messages on 30 channels")
            #expect(try await lab.waitForMetric(["usbhttpd_usbfs_bytes_in_use"]) { $0 == 0 })
            // Others are served normally: REST, and a channel that claims and reads.
            #expect(try await lab.daemon.get("/v1/devices").status == 200)
            let (socket, _) = try await lab.channel(id)
            try await socket.operation(.claim, a: 0, b: 1, id: 3)
            try socket.send(URBWire.submit(.bulk, endpoint: 0x81, id: 4, length: 512, timeout: 5000))
            #expect(try await socket.complete().actualLength == 512)
            try await socket.operation(.release, a: 0, id: 5)
        }
    }
}
