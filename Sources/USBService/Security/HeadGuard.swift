import HTTPRouting
import HTTPServer

/// HEAD is served by a GET route only when that GET only reads (the `read` scope): a GET that
/// moves data (a read from an endpoint, a stream, an isochronous transfer) would do it for a
/// HEAD too, and HEAD must have no effect. Those answer 405 with `Allow: GET`.
struct HeadGuard: RouteGuard {
    func admit(_ request: RoutedRequest) throws -> RoutedRequest {
        guard request.request.method == "HEAD", !request.onlyReads else { return request }
        throw RoutingProblem.methodNotAllowed(method: "HEAD", allowed: ["GET"])
    }
}
