import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The device policy of a second daemon in the lab (following only): what it denies does
    /// not exist for its clients.
    @Suite struct PolicyTests {
        /// Starts a daemon on `port` with `arguments`; the serials of the devices it lists, and
        /// the status of GET /v1/devices/<the FunctionFS gadget's id>.
        func second(_ lab: LabSession, port: Int, _ arguments: String) async throws -> (serials: [String], products: [String], gadget: String) {
            let gadgetID = try await lab.deviceID(serial: LabSession.gadget)
            let output = try await lab.run(
                """
                setsid \(LabSession.daemonBinary) --port \(port) \(arguments) > "$TMPDIR/policy-\(port).log" 2>&1 &
                pid=$!
                for i in $(seq 300); do curl -sf http://127.0.0.1:\(port)/readyz > /dev/null && break; sleep 0.1; done
                curl -s http://127.0.0.1:\(port)/v1/devices > "$TMPDIR/policy-\(port).json"
                echo "gadget=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(port)/v1/devices/\(gadgetID))"
                kill $pid
                cat "$TMPDIR/policy-\(port).json"
                """)
            let gadget = output.split(separator: "\n").first { $0.hasPrefix("gadget=") }.map { String($0.dropFirst(7)) } ?? ""
            let json = output.split(separator: "\n").drop { !$0.hasPrefix("{") }.joined(separator: "\n")
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let devices = object?["devices"] as? [[String: Any]] ?? []
            return (devices.compactMap { $0["serial"] as? String }, devices.compactMap { $0["product"] as? String }, gadget)
        }

        @Test func deniedAndRiskyDevicesAreInvisible() async throws {
            let lab = try await Lab.shared.session()
            let denied = try await second(lab, port: 8095, "--rule 'deny serial=lab-ffs'")
            #expect(!denied.serials.contains(LabSession.gadget), "\(denied)")
            #expect(denied.gadget == "404")
            #expect(denied.serials.contains(LabSession.sourceSink))
            #expect(!denied.products.contains { $0.contains("Keyboard") }, "HID boot keyboards are denied by default: \(denied.products)")
            #expect(!denied.products.contains { $0.contains("Storage") || $0.contains("Stick") }, "mass storage too: \(denied.products)")

            let allowed = try await second(lab, port: 8096, "--rule 'allow class=hid'")
            #expect(allowed.products.contains { $0.contains("Keyboard") }, "an allow rule shows it: \(allowed.products)")
            #expect(allowed.gadget == "200")
        }
    }
}
