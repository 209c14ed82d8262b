import HTTPRouting
import HTTPServer

/// Bearer tokens (RFC 6750) from a ``TokenFile``, checked against each route's scope
/// (``RouteScopes``). The token's name goes to the request's log lines (`auth.token`) and to
/// ``RoutedRequest/principal``; the token itself is never logged. With a `rateLimiter`, a
/// token past its rate gets 429 `rate-limited`.
struct BearerAuthenticator: RouteGuard {
    let tokens: TokenFile
    var rateLimiter: RateLimiter? = nil

    func admit(_ request: RoutedRequest) async throws -> RoutedRequest {
        // A route missing from the table needs the most.
        let needed = RouteScopes.required(method: request.request.method == "HEAD" ? "GET" : request.request.method, route: request.route) ?? .admin
        guard let needed else { return request }
        guard let header = request.request.headers["Authorization"] else { throw AuthProblem.missing }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw AuthProblem.malformed }
        let token = parts[1].trimmingPrefix { $0 == " " }
        guard let entry = tokens.entry(for: Array(token.utf8)) else { throw AuthProblem.invalid }
        var admitted = request
        request.request.annotations["auth.token"] = .string(entry.name)
        admitted.principal = entry.name
        guard entry.scope >= needed else { throw AuthProblem.insufficientScope(needed: needed, name: entry.name) }
        if let wait = rateLimiter?.admit(entry.name) {
            throw AuthProblem.rateLimited(name: entry.name, perSecond: rateLimiter?.perSecond ?? 0, wait: wait)
        }
        return admitted
    }
}

/// 401 and 403 answers, with the `WWW-Authenticate` challenge RFC 6750 asks for.
enum AuthProblem: HTTPResponseError, Sendable {
    case missing
    case malformed
    case invalid
    case insufficientScope(needed: Scope, name: String)
    case rateLimited(name: String, perSecond: Int, wait: Duration)

    var status: Int {
        switch self {
        case .missing, .malformed, .invalid: 401
        case .insufficientScope: 403
        case .rateLimited: 429
        }
    }

    var code: String {
        switch self {
        case .missing, .malformed: "unauthorized"
        case .invalid: "invalid-token"
        case .insufficientScope: "insufficient-scope"
        case .rateLimited: "rate-limited"
        }
    }

    var title: String {
        switch self {
        case .missing, .malformed: "Authentication required"
        case .invalid: "Invalid token"
        case .insufficientScope: "Insufficient scope"
        case .rateLimited: "Too many requests"
        }
    }

    var detail: String {
        switch self {
        case .missing: "Send a bearer token: 'Authorization: Bearer <token>'."
        case .malformed: "The Authorization header must be 'Bearer <token>'."
        case .invalid: "This token is not one the daemon accepts."
        case .insufficientScope(let needed, let name):
            "The token '\(name)' does not have the '\(needed)' scope this request needs."
        case .rateLimited(let name, let perSecond, _):
            "The token '\(name)' is past its \(perSecond) requests a second (--rate-limit); retry after Retry-After."
        }
    }

    var headers: HTTPHeaders {
        switch self {
        case .missing, .malformed: ["WWW-Authenticate": "Bearer realm=\"usbhttpd\""]
        case .invalid: ["WWW-Authenticate": "Bearer realm=\"usbhttpd\", error=\"invalid_token\""]
        case .insufficientScope(let needed, _):
            ["WWW-Authenticate": "Bearer realm=\"usbhttpd\", error=\"insufficient_scope\", scope=\"\(needed)\""]
        case .rateLimited(_, _, let wait):
            // Whole seconds, rounded up (at least 1).
            ["Retry-After": String(max(1, Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0)))]
        }
    }
}
