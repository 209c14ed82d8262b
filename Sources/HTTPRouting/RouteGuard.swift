import HTTPServer

/// Decides, once a request's head has matched a route and before any of its body is read,
/// whether it may go on: where it came from, authentication and authorization, rates live
/// behind this. Runs on the server's thread: it must answer at once.
public protocol RouteGuard: Sendable {
    /// The request to hand to the handler (with who made it, for example), or a thrown
    /// ``HTTPServer/HTTPResponseError`` (401, 403, 421, 429, …) to refuse it.
    func admit(_ request: RoutedRequest) throws -> RoutedRequest
}

/// What a route needs of the requests it serves (a scope, say), declared where the route is
/// registered and handed to the ``RouteGuard``s with each request that matched it
/// (``RoutedRequest/requirement``). The router does not look inside.
public protocol RouteRequirement: Sendable {}

/// What a router adds for browsers: answers to CORS preflights, and headers on every answer.
public protocol CrossOriginPolicy: Sendable {
    /// The answer to an `OPTIONS` preflight for a path whose routes take `methods`.
    func preflight(_ request: HTTPRequest, methods: [String]) -> HTTPResponse
    /// Adds what an answer to `request` carries for its origin (nothing for most requests).
    func decorate(_ response: inout HTTPResponse, for request: HTTPRequest)
}
