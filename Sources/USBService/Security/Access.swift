import HTTPRouting

/// Who may use a route, declared where the route is registered (`router.get(path, requires:
/// .read)`): anyone, or a bearer token with a scope (when there is a token file).
enum Access: RouteRequirement, Equatable {
    /// Anyone, never rate limited: /healthz, /readyz, /openapi.yaml.
    case open
    /// A token with at least this scope.
    case scope(Scope)
    /// A token with at least this scope, for a read that holds its connection open until
    /// something happens (the event stream, a long poll): a page from another origin may not
    /// use it at all, since every such page could hold connections of the per-address and
    /// total caps without anyone seeing (issue 24, class 4).
    case holding(Scope)
    /// A token with at least this scope, for a WebSocket handshake: a browser's WebSocket
    /// cannot send the header, so a one-use ticket offered among its subprotocols
    /// (``TicketBook``) stands for the token it was issued to. No other route reads a ticket.
    case webSocket(Scope)
    /// Anyone; a request that brings a token has it checked as for
    /// this scope, so that the handler learns who it is (`GET /v1/whoami`: a page asks
    /// whether it needs a token before it has one).
    case optional(Scope)

    static let read = Access.scope(.read)
    static let transfer = Access.scope(.transfer)
    static let admin = Access.scope(.admin)
    static let readHeldOpen = Access.holding(.read)

    /// The scope needed, nil for an open route.
    var scope: Scope? {
        switch self {
        case .open: nil
        case .scope(let scope), .holding(let scope), .webSocket(let scope), .optional(let scope): scope
        }
    }

    /// Whether a WebSocket ticket stands for a token here.
    var takesTickets: Bool {
        if case .webSocket = self { return true }
        return false
    }

    /// Whether the route holds its connection open until something happens.
    var holdsConnection: Bool {
        if case .holding = self { return true }
        return false
    }
}

extension Access {
    /// What a route registered with `requirement` needs: a route registered without an
    /// ``Access`` needs the most.
    static func of(_ requirement: (any RouteRequirement)?) -> Access {
        (requirement as? Access) ?? (requirement as? DeviceRouteRequirement)?.access ?? .admin
    }
}

extension RoutedRequest {
    /// What the route needs: a route registered without an ``Access`` needs the most.
    var access: Access { Access.of(requirement) }

    /// A GET (or HEAD) of a route that only reads: what a page from another origin may do, and
    /// what a HEAD may be served by.
    var onlyReads: Bool {
        (request.method == "GET" || request.method == "HEAD") && (access.scope ?? .read) == .read
    }
}
