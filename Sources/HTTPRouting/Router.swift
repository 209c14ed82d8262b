import HTTPServer

/// Dispatches by method and path template. An unknown path answers 404, a known path with
/// another method 405 with `Allow`; HEAD is served by the GET route.
public struct Router: HTTPResponder {
    public typealias Handler = @Sendable (RoutedRequest) async throws -> HTTPResponse

    /// A class, so that looking through the routes copies no strings or closures.
    final class Route: Sendable {
        let method: String
        let template: PathTemplate
        /// The handler reads the body as it arrives (`request.bodyStream`).
        let streamsBody: Bool
        let handler: Handler
        let metrics: RequestMetrics

        init(method: String, template: PathTemplate, streamsBody: Bool, handler: @escaping Handler, metrics: RequestMetrics) {
            self.method = method
            self.template = template
            self.streamsBody = streamsBody
            self.handler = handler
            self.metrics = metrics
        }
    }

    private var routes: [Route] = []
    /// The routes by their number of path segments, in the order added: a path is matched only
    /// against templates as long as it is.
    private var bySegments: [Int: [Route]] = [:]
    /// The metrics of requests that match no route.
    private let unmatched = RequestMetrics(route: RequestMetrics.unmatchedRoute)
    /// Asked before every handler runs (not for unknown paths or methods: 404 and 405 come first).
    public var routeGuard: (any RouteGuard)?

    public init() {}

    public mutating func add(
        _ method: String, _ template: String, streamsBody: Bool = false, _ handler: @escaping Handler
    ) {
        // Routes of one template share its metrics.
        let metrics = routes.first { $0.template.description == template }?.metrics ?? RequestMetrics(route: template)
        let route = Route(
            method: method, template: PathTemplate(template), streamsBody: streamsBody, handler: handler,
            metrics: metrics)
        routes.append(route)
        bySegments[route.template.segments.count, default: []].append(route)
    }

    public mutating func get(_ template: String, _ handler: @escaping Handler) { add("GET", template, handler) }
    public mutating func post(_ template: String, streamsBody: Bool = false, _ handler: @escaping Handler) {
        add("POST", template, streamsBody: streamsBody, handler)
    }
    public mutating func put(_ template: String, _ handler: @escaping Handler) { add("PUT", template, handler) }
    public mutating func delete(_ template: String, _ handler: @escaping Handler) { add("DELETE", template, handler) }

    /// Every route as (method, template), in the order added.
    public var table: [(method: String, template: String)] {
        routes.map { ($0.method, $0.template.description) }
    }

    /// Matches the path once, when the headers arrive: the handler that runs the route (after
    /// the ``routeGuard``), or answers 404 or 405. Every request is counted by route template,
    /// method and status (``RequestMetrics``).
    public func handler(method: String, path: String) -> HTTPHandler {
        let matching = method == "HEAD" ? "GET" : method
        let label = RequestMetrics.methodIndex(matching)
        let parts = PathTemplate.parts(path)
        var allowed: [String] = []
        var firstMatch: RequestMetrics?
        for route in bySegments[parts.count] ?? [] {
            guard let parameters = route.template.match(parts: parts) else { continue }
            guard route.method == matching else {
                allowed.append(route.method)
                if firstMatch == nil { firstMatch = route.metrics }
                continue
            }
            let routeGuard = self.routeGuard
            return HTTPHandler(streamsBody: route.streamsBody) { request in
                let started = ContinuousClock.now
                let template = route.template.description
                do {
                    request.annotations["http.route"] = .string(template)
                    var routed = RoutedRequest(request: request, route: template, parameters: parameters)
                    if let routeGuard { routed = try await routeGuard.admit(routed) }
                    let response = try await route.handler(routed)
                    route.metrics.record(method: label, status: response.status, duration: .now - started)
                    return response
                } catch {
                    route.metrics.record(method: label, status: RequestMetrics.status(of: error), duration: .now - started)
                    throw error
                }
            }
        }
        let problem: RoutingProblem
        if allowed.isEmpty {
            problem = .notFound(path: path)
        } else {
            if allowed.contains("GET") { allowed.append("HEAD") }
            problem = .methodNotAllowed(method: method, allowed: allowed)
        }
        let metrics = firstMatch ?? unmatched
        return HTTPHandler { _ in
            metrics.record(method: label, status: problem.status, duration: .zero)
            throw problem
        }
    }
}

/// A request that matched a route, with the route's template and path parameters.
public struct RoutedRequest: Sendable {
    public var request: HTTPRequest
    /// The template that matched, e.g. "/v1/devices/{id}" (a bounded label, unlike the path).
    public var route: String
    public var parameters: [String: String]
    /// Who made the request, as the ``Router/routeGuard`` established it (a token's name).
    public var principal: String?

    public init(request: HTTPRequest, route: String, parameters: [String: String]) {
        self.request = request
        self.route = route
        self.parameters = parameters
    }

    public var query: QueryParameters { QueryParameters(request.query) }
}
