import HTTPServer

/// Dispatches by method and path template. An unknown path answers 404, a known path with
/// another method 405 with `Allow`; HEAD is served by the GET route.
public struct Router: HTTPResponder {
    public typealias Handler = @Sendable (RoutedRequest) async throws -> HTTPResponse
    /// Answers at once when it can, nil when the request must wait for something (then the
    /// route's ``Handler`` runs): ``HTTPServer/HTTPHandler/respondNow``.
    public typealias ImmediateHandler = @Sendable (RoutedRequest) throws -> HTTPResponse?

    /// A class, so that looking through the routes copies no strings or closures.
    final class Route: Sendable {
        let method: String
        let template: PathTemplate
        /// The handler reads the body as it arrives (`request.bodyStream`).
        let streamsBody: Bool
        let requirement: (any RouteRequirement)?
        let handler: Handler
        let now: ImmediateHandler?
        let metrics: RequestMetrics

        init(
            method: String, template: PathTemplate, streamsBody: Bool, requirement: (any RouteRequirement)?,
            handler: @escaping Handler, now: ImmediateHandler?, metrics: RequestMetrics
        ) {
            self.method = method
            self.template = template
            self.streamsBody = streamsBody
            self.requirement = requirement
            self.handler = handler
            self.now = now
            self.metrics = metrics
        }
    }

    private var routes: [Route] = []
    /// The routes by their number of path segments, in the order added: a path is matched only
    /// against templates as long as it is.
    private var bySegments: [Int: [Route]] = [:]
    /// The metrics of requests that match no route.
    private let unmatched = RequestMetrics(route: RequestMetrics.unmatchedRoute)
    /// Asked in order when a request's head has matched a route, before its body is read and
    /// its handler runs (not for unknown paths or methods: 404 and 405 come first).
    public var guards: [any RouteGuard] = []
    /// Preflights and CORS headers, when browsers from other origins may use the API.
    public var crossOrigin: (any CrossOriginPolicy)?

    public init() {}

    /// Serves `method` on `template` with `handler`; `requires` goes to the guards with each
    /// request (``RoutedRequest/requirement``).
    public mutating func add(
        _ method: String, _ template: String, requires requirement: (any RouteRequirement)? = nil,
        streamsBody: Bool = false, now: ImmediateHandler? = nil, _ handler: @escaping Handler
    ) {
        // Routes of one template share its metrics.
        let metrics = routes.first { $0.template.description == template }?.metrics ?? RequestMetrics(route: template)
        let route = Route(
            method: method, template: PathTemplate(template), streamsBody: streamsBody, requirement: requirement,
            handler: handler, now: now, metrics: metrics)
        routes.append(route)
        bySegments[route.template.segments.count, default: []].append(route)
    }

    public mutating func get(
        _ template: String, requires requirement: (any RouteRequirement)? = nil, now: ImmediateHandler? = nil,
        _ handler: @escaping Handler
    ) { add("GET", template, requires: requirement, now: now, handler) }
    /// A GET route that never waits: answered inside libmicrohttpd's callback, with no task.
    public mutating func get(
        _ template: String, requires requirement: (any RouteRequirement)? = nil,
        immediately handler: @escaping @Sendable (RoutedRequest) throws -> HTTPResponse
    ) { add("GET", template, requires: requirement, now: { try handler($0) }) { try handler($0) } }
    public mutating func post(
        _ template: String, requires requirement: (any RouteRequirement)? = nil, streamsBody: Bool = false,
        _ handler: @escaping Handler
    ) { add("POST", template, requires: requirement, streamsBody: streamsBody, handler) }
    public mutating func put(
        _ template: String, requires requirement: (any RouteRequirement)? = nil, _ handler: @escaping Handler
    ) { add("PUT", template, requires: requirement, handler) }
    public mutating func delete(
        _ template: String, requires requirement: (any RouteRequirement)? = nil, _ handler: @escaping Handler
    ) { add("DELETE", template, requires: requirement, handler) }

    /// Every route as (method, template, requirement), in the order added.
    public var table: [(method: String, template: String, requirement: (any RouteRequirement)?)] {
        routes.map { ($0.method, $0.template.description, $0.requirement) }
    }

    /// Matches the path once, when the headers arrive, and runs the ``guards`` then: the handler
    /// that runs the route, or one that refuses the request (404, 405, or a guard's problem)
    /// without reading its body. Every request is counted by route template, method and
    /// status (``RequestMetrics``).
    public func handler(for request: HTTPRequest) -> HTTPHandler {
        let method = request.method
        let matching = method == "HEAD" ? "GET" : method
        let label = RequestMetrics.methodIndex(matching)
        let parts = PathTemplate.parts(request.path)
        var allowed: [String] = []
        var firstMatch: RequestMetrics?
        let crossOrigin = self.crossOrigin
        let decorate = crossOrigin.flatMap { Self.decoration(by: $0, for: request) }
        for route in bySegments[parts.count] ?? [] {
            guard let parameters = route.template.match(parts: parts) else { continue }
            guard route.method == matching else {
                allowed.append(route.method)
                if firstMatch == nil { firstMatch = route.metrics }
                continue
            }
            let template = route.template.description
            request.annotations["http.route"] = .string(template)
            var admitted = RoutedRequest(
                request: request, route: template, parameters: parameters, requirement: route.requirement)
            do {
                for routeGuard in guards { admitted = try routeGuard.admit(admitted) }
            } catch {
                route.metrics.record(method: label, status: RequestMetrics.status(of: error), duration: .zero)
                var refusal = HTTPHandler.refuse(HTTPProblem.answer(for: error).response(for: request))
                refusal.decorate = decorate
                return refusal
            }
            let head = admitted
            var handler = HTTPHandler(streamsBody: route.streamsBody, decorate: decorate) { request in
                let started = ContinuousClock.now
                do {
                    // The head as admitted, with the request as it is now (its body read).
                    var routed = head
                    routed.request = request
                    let response = try await route.handler(routed)
                    route.metrics.record(method: label, status: response.status, duration: .now - started)
                    return response
                } catch {
                    route.metrics.record(method: label, status: RequestMetrics.status(of: error), duration: .now - started)
                    throw error
                }
            }
            if let now = route.now {
                handler.respondNow = { request in
                    let started = ContinuousClock.now
                    do {
                        var routed = head
                        routed.request = request
                        guard let response = try now(routed) else { return nil }
                        route.metrics.record(method: label, status: response.status, duration: .now - started)
                        return response
                    } catch {
                        route.metrics.record(method: label, status: RequestMetrics.status(of: error), duration: .now - started)
                        throw error
                    }
                }
            }
            return handler
        }
        let metrics = firstMatch ?? unmatched
        if method == "OPTIONS", !allowed.isEmpty, let crossOrigin {
            if allowed.contains("GET") { allowed.append("HEAD") }
            let answer = crossOrigin.preflight(request, methods: allowed)
            metrics.record(method: label, status: answer.status, duration: .zero)
            return .refuse(answer)
        }
        let problem: RoutingProblem
        if allowed.isEmpty {
            problem = .notFound(path: request.path)
        } else {
            if allowed.contains("GET") { allowed.append("HEAD") }
            problem = .methodNotAllowed(method: method, allowed: allowed)
        }
        metrics.record(method: label, status: problem.status, duration: .zero)
        var refusal = HTTPHandler.refuse(problem.response(for: request))
        refusal.decorate = decorate
        return refusal
    }
}

extension Router {
    /// What adds `policy`'s headers to each answer to `request`.
    fileprivate static func decoration(
        by policy: any CrossOriginPolicy, for request: HTTPRequest
    ) -> (@Sendable (inout HTTPResponse) -> Void)? {
        { response in policy.decorate(&response, for: request) }
    }
}

/// A request that matched a route, with the route's template and path parameters.
public struct RoutedRequest: Sendable {
    public var request: HTTPRequest
    /// The template that matched, e.g. "/v1/devices/{id}" (a bounded label, unlike the path).
    public var route: String
    public var parameters: [String: String]
    /// What the route declared it needs, when it was added (``Router/add(_:_:requires:streamsBody:_:)``).
    public var requirement: (any RouteRequirement)?
    /// Who made the request, as a ``RouteGuard`` established it (a token's name).
    public var principal: String?

    public init(
        request: HTTPRequest, route: String, parameters: [String: String], requirement: (any RouteRequirement)? = nil
    ) {
        self.request = request
        self.route = route
        self.parameters = parameters
        self.requirement = requirement
    }

    public var query: QueryParameters { QueryParameters(request.query) }
}
