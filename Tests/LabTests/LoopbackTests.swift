import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The kernel's Loopback gadget: what goes OUT comes back IN.
    @Suite struct LoopbackTests {
        @Test func whatGoesOutComesBack() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let `in` = try await lab.endpoint(id, type: "bulk", direction: "in")
            try await drain(lab, id, `in`)
            for size in [1, 511, 512, 2048, 4000] {
                let data = (0..<size).map { _ in UInt8.random(in: 0...255) }
                // Loopback ends a returned packet-filling transfer with a zero-length packet when
                // the OUT transfer ended with one: so a read longer than the data ends right after it.
                let sent = try await lab.write(id, endpoint: out, data: data, query: "zlp=true")
                #expect(sent.status == 200 && sent.actualLength == size, "\(sent.text)")
                // Asking for more than was sent: a short read, which is a success.
                let back = try await lab.read(id, endpoint: `in`, length: 4096, timeout: 2000)
                #expect(back.status == 200, "\(back.text)")
                #expect(back.body == data, "\(size) bytes came back as \(back.body.count)")
                #expect(back.header("X-USB-Actual-Length") == String(size))
            }
        }

        @Test func readsAnswerJSONWhenAsked() async throws {
            let (lab, id) = try await Lab.shared.device(LabSession.loopback, .claimed)
            let out = try await lab.endpoint(id, type: "bulk", direction: "out")
            let `in` = try await lab.endpoint(id, type: "bulk", direction: "in")
            try await drain(lab, id, `in`)
            _ = try await lab.write(id, endpoint: out, data: [0xde, 0xad, 0xbe, 0xef])
            let back = try await lab.daemon.request(
                "GET", "/v1/devices/\(id)/endpoints/\(`in`)/data?length=512", headers: ["Accept": "application/json"])
            let answer = try back.object()
            #expect(answer["data_hex"] as? String == "deadbeef")
            #expect(answer["actual_length"] as? Int == 4 && answer["requested_length"] as? Int == 512)
        }

        /// Reads until nothing is left over from earlier tests.
        func drain(_ lab: LabSession, _ id: String, _ endpoint: Int) async throws {
            for _ in 0..<64 {
                guard try await lab.read(id, endpoint: endpoint, length: 4096, timeout: 100).status == 200 else { return }
            }
        }
    }
}
