import HTTPServer

/// What can go wrong with leases.
enum LeaseProblem: HTTPResponseError, Sendable, Equatable {
    /// Someone else holds a lease covering what the request changes (or asks to lease).
    case held(Lease)
    case notFound(String)
    /// The request does not show the lease's token.
    case wrongToken(Lease)

    var status: Int {
        switch self {
        case .held: 423
        case .notFound: 404
        case .wrongToken: 403
        }
    }

    var code: String {
        switch self {
        case .held: "lease-held"
        case .notFound: "lease-not-found"
        case .wrongToken: "lease-token-mismatch"
        }
    }

    var title: String {
        switch self {
        case .held: "Leased by another client"
        case .notFound: "No such lease"
        case .wrongToken: "Not this lease's token"
        }
    }

    var detail: String {
        switch self {
        case .held(let lease):
            "\(lease.interface.map { "Interface \($0) of " } ?? "")\(lease.device) is leased by '\(lease.holder)' (lease \(lease.id), fencing \(lease.fencing)) until \(Timestamp.iso8601(lease.expiresAt)); send its token in X-USB-Lease, or wait."
        case .notFound(let id): "No lease '\(id)' is held (it may have expired)."
        case .wrongToken(let lease): "Lease \(lease.id) is renewed or released only with its own token in X-USB-Lease."
        }
    }

    var headers: HTTPHeaders {
        switch self {
        case .held(let lease): ["X-USB-Lease-Holder": lease.holder, "Retry-After": "1"]
        default: [:]
        }
    }
}
