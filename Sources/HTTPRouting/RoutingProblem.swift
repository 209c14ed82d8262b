import HTTPServer

/// The problems routing and parameter parsing answer with.
public enum RoutingProblem: HTTPResponseError, Sendable {
    case notFound(path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case unknownParameter(name: String, allowed: [String])
    case invalidParameter(name: String, value: String, expected: String)
    case repeatedParameter(name: String)

    public var status: Int {
        switch self {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .unknownParameter, .invalidParameter, .repeatedParameter: 400
        }
    }

    public var code: String {
        switch self {
        case .notFound: "not-found"
        case .methodNotAllowed: "method-not-allowed"
        case .unknownParameter: "unknown-parameter"
        case .invalidParameter: "invalid-parameter"
        case .repeatedParameter: "repeated-parameter"
        }
    }

    public var title: String {
        switch self {
        case .notFound: "Not found"
        case .methodNotAllowed: "Method not allowed"
        case .unknownParameter: "Unknown query parameter"
        case .invalidParameter: "Invalid query parameter"
        case .repeatedParameter: "Repeated query parameter"
        }
    }

    public var detail: String {
        switch self {
        case .notFound(let path): "No resource at '\(path)'."
        case .methodNotAllowed(let method, let allowed):
            "\(method) is not allowed here; allowed: \(allowed.joined(separator: ", "))."
        case .unknownParameter(let name, let allowed):
            allowed.isEmpty
                ? "'\(name)' is not a parameter of this resource, which takes none."
                : "'\(name)' is not a parameter of this resource; it takes: \(allowed.joined(separator: ", "))."
        case .invalidParameter(let name, let value, let expected):
            "'\(name)=\(value)' is not valid: expected \(expected)."
        case .repeatedParameter(let name): "'\(name)' may be given only once."
        }
    }

    public var headers: HTTPHeaders {
        if case .methodNotAllowed(_, let allowed) = self { return ["Allow": allowed.joined(separator: ", ")] }
        return [:]
    }
}
