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
            let (lab, id) = try await Lab.shared.device(LabSession.sourceSink, .claimed)
            let endpoint = try await lab.endpoint(id, type: "bulk", direction: "in")
            #expect(try await lab.read(id, endpoint: endpoint, length: 512).status == 200)
            let streamed = try await lab.daemon.get("/v1/devices/\(id)/endpoints/\(endpoint)/stream?max_bytes=1048576&transfer_size=16384&transfers=8")
            #expect(streamed.status == 200 && streamed.body.count == 1_048_576)
            _ = try await lab.post("/v1/devices/\(id)/control?direction=in&type=standard&request=6&value=0x100&length=18")

            let text = try await lab.daemon.get("/metrics").text
            let devices = try await lab.daemon.get("/v1/devices").object()["devices"] as? [[String: Any]] ?? []
            #expect(try await lab.metric(["usbhttpd_devices_present"], in: text) == Double(devices.count), "\(text.prefix(3000))")
            #expect((try await lab.metric(["usbhttpd_usb_transfers_total{", "type=\"bulk\"", "outcome=\"completed\""], in: text) ?? 0) >= 2)
            #expect((try await lab.metric(["usbhttpd_usb_transfers_total{", "type=\"control\"", "outcome=\"completed\""], in: text) ?? 0) >= 1)
            #expect((try await lab.metric(["usbhttpd_usb_bytes_total{", "direction=\"in\""], in: text) ?? 0) >= 1_048_576 + 512 + 18)
            // 64 buffers of 16 KiB, 8 in flight: at least 56 went back through the device actor.
            #expect((try await lab.metric(["usbhttpd_stream_resubmissions_total"], in: text) ?? 0) >= 56, "\(text.prefix(3000))")
            #expect((try await lab.metric(["usbhttpd_stream_resubmission_wait_seconds_total"], in: text) ?? 0) > 0)
            #expect((try await lab.metric(["usbhttpd_stream_buffers_total{", "source=\"zero_copy\""], in: text) ?? 0) >= 1)
            #expect(try await lab.metric(["usbhttpd_streams_active{", "direction=\"in\""], in: text) == 0, "every stream closed")
            #expect(
                (try await lab.metric(["usbhttpd_http_requests_total{", "route=\"/v1/devices/{id}/endpoints/{endpoint}/data\"", "status=\"200\""], in: text) ?? 0) >= 1)
            #expect(!text.contains(id + "\""), "no device ids in labels")
        }
    }
}
