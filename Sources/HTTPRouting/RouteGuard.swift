/// Decides, once a request has matched a route and before the route's handler runs, whether
/// it may go on: authentication and authorization live behind this.
public protocol RouteGuard: Sendable {
    /// The request to hand to the handler (with who made it, for example), or a thrown
    /// ``HTTPServer/HTTPResponseError`` (401, 403, …) to refuse it.
    func admit(_ request: RoutedRequest) async throws -> RoutedRequest
}
