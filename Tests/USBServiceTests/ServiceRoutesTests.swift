import Foundation
import HTTPServer
import Testing
import Metrics
import Prometheus
import USB

@testable import USBService

/// `/openapi.yaml`, `/healthz`, `/readyz`.
@Suite struct ServiceRoutesTests {
    func call(_ catalog: some DeviceCatalog, _ path: String, query: [(String, String)] = []) async -> HTTPResponse {
        await API.router(catalog: catalog).response(
            to: HTTPRequest(method: "GET", path: path, query: query.map { (name: $0.0, value: $0.1) }))
    }

    @Test func theServedContractIsTheOneInTheRepository() async throws {
        let response = await call(FakeCatalog(list: []), "/openapi.yaml")
        #expect(response.status == 200 && response.headers["Content-Type"] == "application/yaml")
        #expect(String(decoding: response.body, as: UTF8.self) == OpenAPIContractTests.document)
        let refused = await call(FakeCatalog(list: []), "/openapi.yaml", query: [("format", "json")])
        #expect(refused.status == 400)
    }

    @Test func healthAndReadiness() async throws {
        let health = await call(FakeCatalog(list: []), "/healthz")
        #expect(health.status == 200 && String(decoding: health.body, as: UTF8.self).contains("\"ok\""))
        let ready = await call(FakeCatalog(list: []), "/readyz")
        #expect(ready.status == 200 && String(decoding: ready.body, as: UTF8.self).contains("\"ready\""))
        var stopping = FakeCatalog(list: [])
        stopping.readiness = (false, "shutting down")
        let notReady = await call(stopping, "/readyz")
        #expect(notReady.status == 503 && notReady.headers["Retry-After"] == "1")
        #expect(notReady.headers["Content-Type"] == "application/problem+json")
        #expect(String(decoding: notReady.body, as: UTF8.self).contains("shutting down"))
    }
}

/// `/metrics`, with swift-metrics bootstrapped once for this test process.
@Suite struct MetricsRouteTests {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    @Test func requestsAreCountedByRouteTemplateMethodAndStatus() async throws {
        let api = API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard]), metrics: Self.registry)
        for path in ["/v1/devices", "/v1/devices/4-1", "/v1/devices/9-9", "/nowhere"] {
            _ = await api.response(to: HTTPRequest(method: "GET", path: path))
        }
        _ = await api.response(to: HTTPRequest(method: "DELETE", path: "/v1/devices"))
        // Made-up methods, before any authentication, must not grow the metrics.
        for method in ["FROB", "X-\(UInt64.random(in: 0 ... .max))", "GETX"] {
            _ = await api.response(to: HTTPRequest(method: method, path: "/v1/devices"))
        }
        let response = await api.response(to: HTTPRequest(method: "GET", path: "/metrics"))
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let lines = String(decoding: response.body, as: UTF8.self).split(separator: "\n")
        func line(_ parts: String...) -> Bool {
            lines.contains { line in parts.allSatisfy { line.contains($0) } }
        }
        #expect(line("usbhttpd_http_requests_total{", "route=\"/v1/devices/{id}\"", "status=\"200\""))
        #expect(line("usbhttpd_http_requests_total{", "route=\"/v1/devices/{id}\"", "status=\"404\""))
        #expect(line("usbhttpd_http_requests_total{", "route=\"unmatched\"", "status=\"404\""))
        #expect(line("usbhttpd_http_requests_total{", "route=\"/v1/devices\"", "method=\"DELETE\"", "status=\"405\""))
        #expect(line("usbhttpd_http_request_duration_seconds_bucket{", "route=\"/v1/devices\""))
        #expect(!lines.contains { $0.contains("9-9") }, "no raw paths or ids in labels")
        #expect(line("usbhttpd_http_requests_total{", "route=\"/v1/devices\"", "method=\"other\"", "status=\"405\""))
        #expect(!lines.contains { $0.contains("FROB") || $0.contains("GETX") || $0.contains("X-") }, "unknown methods are 'other'")
    }
}
