import HTTPServer

/// Dispatches by method and path template. An unknown path answers 404, a known path with
/// another method 405 with `Allow`; HEAD is served by the GET route.
public struct Router: HTTPResponder {
    public typealias Handler = @Sendable (RoutedRequest) async throws -> HTTPResponse

    struct Route: Sendable {
        let method: String
        let template: PathTemplate
        /// The handler reads the body as it arrives (`request.bodyStream`).
        let streamsBody: Bool
        let handler: Handler
    }

    private var routes: [Route] = []
    /// Asked before every handler runs (not for unknown paths or methods: 404 and 405 come first).
    public var routeGuard: (any RouteGuard)?
    /// Picks the executor a matched request's task prefers, from its route template and path
    /// parameters (``HTTPResponder/executor(for:)``); must answer at once. Nil: Swift's global one.
    public var executorForRoute: (@Sendable (_ route: String, _ parameters: [String: String]) -> (any TaskExecutor)?)?

    public init() {}

    public mutating func add(
        _ method: String, _ template: String, streamsBody: Bool = false, _ handler: @escaping Handler
    ) {
        routes.append(
            Route(method: method, template: PathTemplate(template), streamsBody: streamsBody, handler: handler))
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

    public func streamsBody(method: String, path: String) -> Bool {
        guard routes.contains(where: { $0.streamsBody && $0.method == method }) else { return false }
        let parts = PathTemplate.parts(path)
        return routes.contains { $0.streamsBody && $0.method == method && $0.template.match(parts: parts) != nil }
    }

    public func executor(for request: HTTPRequest) -> (any TaskExecutor)? {
        guard let executorForRoute else { return nil }
        let method = request.method == "HEAD" ? "GET" : request.method
        let parts = PathTemplate.parts(request.path)
        for route in routes where route.method == method {
            if let parameters = route.template.match(parts: parts) {
                return executorForRoute(route.template.description, parameters)
            }
        }
        return nil
    }

    /// Dispatches `request`, and counts it by route template, method and status (``RequestMetrics``).
    public func respond(to request: HTTPRequest) async throws -> HTTPResponse {
        let started = ContinuousClock.now
        let method = request.method == "HEAD" ? "GET" : request.method
        var route = RequestMetrics.unmatched
        do {
            let response = try await dispatch(request, method: method, route: &route)
            RequestMetrics.record(
                route: route, method: method, status: response.status, duration: .now - started)
            return response
        } catch {
            RequestMetrics.record(
                route: route, method: method, status: RequestMetrics.status(of: error), duration: .now - started)
            throw error
        }
    }

    private func dispatch(_ request: HTTPRequest, method: String, route matched: inout String) async throws
        -> HTTPResponse
    {
        var allowed: [String] = []
        let parts = PathTemplate.parts(request.path)
        for route in routes {
            guard let parameters = route.template.match(parts: parts) else { continue }
            guard route.method == method else {
                allowed.append(route.method)
                if allowed.count == 1 { matched = route.template.description }
                continue
            }
            var request = request
            matched = route.template.description
            request.logger[metadataKey: "http.route"] = .string(matched)
            request.annotations["http.route"] = .string(matched)
            var routed = RoutedRequest(request: request, route: matched, parameters: parameters)
            if let routeGuard { routed = try await routeGuard.admit(routed) }
            return try await route.handler(routed)
        }
        if allowed.isEmpty { throw RoutingProblem.notFound(path: request.path) }
        if allowed.contains("GET") { allowed.append("HEAD") }
        throw RoutingProblem.methodNotAllowed(method: request.method, allowed: allowed)
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
