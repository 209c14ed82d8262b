import HTTPRouting
import HTTPServer

/// Who a request is, and whether it may go on, from its head (before any of its body is
/// read): bearer tokens (RFC 6750) from a ``TokenFile`` checked against each route's scope
/// (``Access``, declared with the route), when there is a token file; then a request rate per client (a token's
/// name, or the client's address without tokens), when one is set. The token's name goes to
/// the request's log lines (`auth.token`) and to ``RoutedRequest/principal``; the token itself
/// is never logged. Failed attempts are limited per address whatever the rate: after
/// `failureBurst` of them, a wrong token is 429 until the bucket refills (one a second), so
/// tokens cannot be guessed at speed; a right one still goes through (someone flooding from a
/// shared address, a NAT, must not lock out the ones who hold tokens: at least 16 characters,
/// they are not guessed).
///
/// A browser's WebSocket cannot send the header: the handshake of a WebSocket route
/// (``Access/webSocket(_:)``) may offer a one-use ticket instead (``TicketBook``), which
/// stands for the token it was issued to; any other route leaves an offered ticket unread.
struct Authenticator: RouteGuard {
    var tokens: TokenFile?
    var tickets = TicketBook()
    var rateLimiter: RateLimiter?
    var failures = RateLimiter(perSecond: 1, burst: Authenticator.failureBurst)
    static let failureBurst = 10

    func admit(_ request: RoutedRequest) throws -> RoutedRequest {
        var admitted = request
        let head = request.request
        guard let needed = request.access.scope else { return request }  // open to anyone, never limited
        if case .optional = request.access, head.headers["Authorization"] == nil {
            return request  // anonymous: the handler says what it may
        }
        let address = "address \(head.remoteAddress)"
        if let tokens {
            let entry: (name: String, scope: Scope)
            do {
                entry = try Self.entry(head, in: tokens, tickets: request.access.takesTickets ? tickets : nil)
            } catch {
                if let wait = failures.exhausted(address) { throw AuthProblem.tooManyFailures(wait: wait) }
                _ = failures.admit(address)
                throw error
            }
            head.annotations["auth.token"] = .string(entry.name)
            admitted.principal = entry.name
            guard entry.scope >= needed else { throw AuthProblem.insufficientScope(needed: needed, name: entry.name) }
        }
        if let rateLimiter, let wait = rateLimiter.admit(admitted.principal.map { "token \($0)" } ?? address) {
            throw AuthProblem.rateLimited(
                name: admitted.principal ?? "this address", perSecond: rateLimiter.perSecond, wait: wait)
        }
        return admitted
    }

    private static func entry(
        _ head: HTTPRequest, in tokens: TokenFile, tickets: TicketBook?
    ) throws(AuthProblem) -> (name: String, scope: Scope) {
        if head.headers["Authorization"] == nil, let tickets, let offered = TicketBook.offered(in: head) {
            guard let ticket = tickets.redeem(offered), let name = ticket.name,
                let entry = tokens.entries.first(where: { $0.name == name })
            else { throw .invalidTicket }
            return (entry.name, min(entry.scope, ticket.scope))
        }
        guard let header = head.headers["Authorization"] else { throw .missing }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw .malformed }
        let token = parts[1].trimmingPrefix { $0 == " " }
        guard let entry = tokens.entry(for: Array(token.utf8)) else { throw .invalid }
        return (entry.name, entry.scope)
    }
}

/// 401 and 403 answers, with the `WWW-Authenticate` challenge RFC 6750 asks for.
enum AuthProblem: HTTPResponseError, Sendable {
    case missing
    case malformed
    case invalid
    /// A WebSocket ticket that is unknown, used already, or expired.
    case invalidTicket
    case insufficientScope(needed: Scope, name: String)
    case rateLimited(name: String, perSecond: Int, wait: Duration)
    case tooManyFailures(wait: Duration)

    var status: Int {
        switch self {
        case .missing, .malformed, .invalid, .invalidTicket: 401
        case .insufficientScope: 403
        case .rateLimited, .tooManyFailures: 429
        }
    }

    var code: String {
        switch self {
        case .missing, .malformed: "unauthorized"
        case .invalid: "invalid-token"
        case .invalidTicket: "invalid-ticket"
        case .insufficientScope: "insufficient-scope"
        case .rateLimited, .tooManyFailures: "rate-limited"
        }
    }

    var title: String {
        switch self {
        case .missing, .malformed: "Authentication required"
        case .invalid: "Invalid token"
        case .invalidTicket: "Invalid ticket"
        case .insufficientScope: "Insufficient scope"
        case .rateLimited, .tooManyFailures: "Too many requests"
        }
    }

    var detail: String {
        switch self {
        case .missing: "Send a bearer token: 'Authorization: Bearer <token>'."
        case .malformed: "The Authorization header must be 'Bearer <token>'."
        case .invalid: "This token is not one the daemon accepts."
        case .invalidTicket:
            "The WebSocket ticket offered is unknown, used already or expired: ask POST /v1/tickets for a new one."
        case .insufficientScope(let needed, let name):
            "The token '\(name)' does not have the '\(needed)' scope this request needs."
        case .rateLimited(let name, let perSecond, _):
            "'\(name)' is past its \(perSecond) requests a second (--rate-limit); retry after Retry-After."
        case .tooManyFailures:
            "Too many requests from this address failed to authenticate; retry after Retry-After."
        }
    }

    var headers: HTTPHeaders {
        switch self {
        case .missing, .malformed: ["WWW-Authenticate": "Bearer realm=\"usbhttpd\""]
        case .invalid, .invalidTicket: ["WWW-Authenticate": "Bearer realm=\"usbhttpd\", error=\"invalid_token\""]
        case .insufficientScope(let needed, _):
            ["WWW-Authenticate": "Bearer realm=\"usbhttpd\", error=\"insufficient_scope\", scope=\"\(needed)\""]
        case .rateLimited(_, _, let wait), .tooManyFailures(let wait):
            // Whole seconds, rounded up (at least 1).
            ["Retry-After": String(max(1, Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0)))]
        }
    }
}
