import HTTPRouting
import HTTPServer

/// What a client learns of itself: `GET /v1/whoami` (open: its token's name and scope if it sent
/// one, whether tokens are asked for, and this
/// daemon's node name: what a page shows and which actions it offers) and `POST /v1/tickets`
/// (a one-use ticket for a WebSocket handshake, ``TicketBook``, for the token the request
/// carries: what a browser page offers instead of a header).
struct CallerRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        router.get("/v1/whoami", requires: Access.optional(.read), immediately: whoami)
        router.post("/v1/tickets", requires: Access.read) { try await issue($0) }
    }

    func whoami(_ request: RoutedRequest) throws -> HTTPResponse {
        try request.query.allow(only: [])
        // Without a token where tokens are asked for: anonymous, no scope (nothing but this
        // route and the open ones will answer it).
        let anonymous = context.tokens != nil && request.principal == nil
        return try .json(
            Whoami(
                name: Nullable(request.principal), scope: Nullable(anonymous ? nil : context.scope(of: request).description),
                tokensRequired: context.tokens != nil, node: Nullable(context.node)))
    }

    func issue(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let (id, _) = context.tickets.issue(name: request.principal, scope: context.scope(of: request))
        request.request.logger.debug("WebSocket ticket issued")
        return try .json(
            TicketModel(
                ticket: id, subprotocol: TicketBook.subprotocolPrefix + id,
                expiresInMs: Int(TicketBook.lifetime.components.seconds * 1000)),
            status: 201, headers: ["Cache-Control": "no-store"])
    }
}

/// The answer of `GET /v1/whoami`.
struct Whoami: Encodable, Sendable {
    /// The token's name (null without a token file).
    var name: Nullable<String>
    /// The token's scope; null without a token where tokens are asked for (`tokens_required`).
    var scope: Nullable<String>
    /// Whether the daemon asks for tokens (it has a token file).
    var tokensRequired: Bool
    /// The daemon's node name (--node-name), null when none was given.
    var node: Nullable<String>
}
