import HTTPRouting

/// Who may use a route, declared where the route is registered (`router.get(path, requires:
/// .read)`): anyone, or a bearer token with a scope (when there is a token file).
enum Access: RouteRequirement, Equatable {
    /// Anyone, never rate limited: /healthz, /readyz, /openapi.yaml.
    case open
    /// A token with at least this scope.
    case scope(Scope)

    static let read = Access.scope(.read)
    static let transfer = Access.scope(.transfer)
    static let admin = Access.scope(.admin)

    /// The scope needed, nil for an open route.
    var scope: Scope? {
        switch self {
        case .open: nil
        case .scope(let scope): scope
        }
    }
}

extension RoutedRequest {
    /// What the route needs: a route registered without an ``Access`` needs the most.
    var access: Access { requirement as? Access ?? .admin }

    /// A GET (or HEAD) of a route that only reads: what a page from another origin may do, and
    /// what a HEAD may be served by.
    var onlyReads: Bool {
        (request.method == "GET" || request.method == "HEAD") && (access.scope ?? .read) == .read
    }
}
