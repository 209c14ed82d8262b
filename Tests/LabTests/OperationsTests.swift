import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// What operators use: health, readiness, the served contract, metrics of real USB work.
    @Suite struct OperationsTests {
        @Test func healthReadinessAndTheContract() async throws {
            let lab = try await Lab.shared.session()
            #expect(try await lab.daemon.get("/healthz").status == 200)
            let ready = try await lab.daemon.get("/readyz")
            #expect(ready.status == 200 && ready.text.contains("\"hotplug\" : \"netlink\""), "\(ready.text)")
            let contract = try await lab.daemon.get("/openapi.yaml")
            let onDisk = try String(contentsOf: LabSession.root.appendingPathComponent("openapi.yaml"), encoding: .utf8)
            #expect(contract.status == 200 && contract.text == onDisk)
        }

        @Test func metricsCountRealTransfersStreamsAndDevices() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.sourceSink)
            try await lab.claimed(id)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            #expect(try await lab.read(id, endpoint: endpoint, length: 512).status == 200)
            #expect(try await lab.daemon.get("/v1/devices/\(id)/endpoints/\(endpoint)/stream?max_bytes=65536").status == 200)
            _ = try await lab.post("/v1/devices/\(id)/control?direction=in&type=standard&request=6&value=0x100&length=18")

            let text = try await lab.daemon.get("/metrics").text
            let lines = text.split(separator: "\n")
            func value(_ parts: String...) -> Double? {
                lines.first { line in !line.hasPrefix("#") && parts.allSatisfy { line.contains($0) } }
                    .flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            let devices = try await lab.daemon.get("/v1/devices").object()["devices"] as? [[String: Any]] ?? []
            #expect(value("usbhttpd_devices_present") == Double(devices.count), "\(text.prefix(3000))")
            #expect((value("usbhttpd_usb_transfers_total{", "type=\"bulk\"", "outcome=\"completed\"") ?? 0) >= 2)
            #expect((value("usbhttpd_usb_transfers_total{", "type=\"control\"", "outcome=\"completed\"") ?? 0) >= 1)
            #expect((value("usbhttpd_usb_bytes_total{", "direction=\"in\"") ?? 0) >= 65536 + 512 + 18)
            #expect((value("usbhttpd_stream_buffers_total{", "source=\"zero_copy\"") ?? 0) >= 1)
            #expect(value("usbhttpd_streams_active{", "direction=\"in\"") == 0, "every stream closed")
            #expect(
                (value("usbhttpd_http_requests_total{", "route=\"/v1/devices/{id}/endpoints/{endpoint}/data\"", "status=\"200\"") ?? 0) >= 1)
            #expect(!text.contains(id + "\""), "no device ids in labels")
        }
    }
}
