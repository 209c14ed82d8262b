import HTTPRouting
import HTTPServer
import Prometheus

/// What operators and tools ask of the daemon itself: its contract, whether it lives, whether
/// it is ready, its metrics.
struct ServiceRoutes: Sendable {
    let context: RouteContext
    let metrics: PrometheusCollectorRegistry

    func register(in router: inout Router) {
        router.get("/openapi.yaml", requires: Access.open, immediately: openAPI)
        router.get("/healthz", requires: Access.open, immediately: health)
        router.get("/readyz", requires: Access.open) { try await ready($0) }
        router.get("/metrics", requires: Access.read, immediately: scrape)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    func scrape(_ request: RoutedRequest) throws -> HTTPResponse {
        try request.query.allow(only: [])
        return HTTPResponse(
            headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.emitToBuffer())
    }

    /// The openapi.yaml this binary was built with (embedded by the Embed plugin).
    func openAPI(_ request: RoutedRequest) throws -> HTTPResponse {
        try request.query.allow(only: [])
        return HTTPResponse(headers: ["Content-Type": "application/yaml"], body: Self.openAPIDocument)
    }

    private static let openAPIDocument = Array((OpenAPIDocument.files["openapi.yaml"] ?? "").utf8)

    /// Liveness: the server answers (a body made once: probes call this often).
    func health(_ request: RoutedRequest) throws -> HTTPResponse {
        try request.query.allow(only: [])
        return Self.healthy
    }

    private static let healthy = HTTPResponse(
        headers: ["Content-Type": "application/json"], body: Array("{\n  \"status\" : \"ok\"\n}\n".utf8))

    /// Readiness: devices are being followed and the daemon is not stopping.
    func ready(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let readiness = await context.catalog.readiness
        guard readiness.isReady else { throw NotReadyProblem(reason: readiness.reason) }
        return try .json(Readiness(status: "ready", hotplug: readiness.reason))
    }

    private struct Readiness: Encodable {
        var status: String
        var hotplug: String
    }
}

/// `/readyz` while the daemon cannot serve devices.
struct NotReadyProblem: HTTPResponseError, Sendable {
    var reason: String
    var status: Int { 503 }
    var code: String { "not-ready" }
    var title: String { "Not ready" }
    var detail: String { "The daemon is not ready: \(reason)." }
    var headers: HTTPHeaders { ["Retry-After": "1"] }
}
