import HTTPServer

/// The problems routing and parameter parsing answer with. "Parameters" are query arguments,
/// or the fields of a JSON body that a route accepts in their place.
public enum RoutingProblem: HTTPResponseError, Sendable {
    case notFound(path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case unknownParameter(name: String, allowed: [String])
    case invalidParameter(name: String, value: String, expected: String)
    case repeatedParameter(name: String)
    case missingParameter(name: String, expected: String)
    case conflictingParameters([String])
    case invalidJSON(String)

    public var status: Int {
        switch self {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .unknownParameter, .invalidParameter, .repeatedParameter, .missingParameter, .conflictingParameters,
            .invalidJSON:
            400
        }
    }

    public var code: String {
        switch self {
        case .notFound: "not-found"
        case .methodNotAllowed: "method-not-allowed"
        case .unknownParameter: "unknown-parameter"
        case .invalidParameter: "invalid-parameter"
        case .repeatedParameter: "repeated-parameter"
        case .missingParameter: "missing-parameter"
        case .conflictingParameters: "conflicting-parameters"
        case .invalidJSON: "invalid-json"
        }
    }

    public var title: String {
        switch self {
        case .notFound: "Not found"
        case .methodNotAllowed: "Method not allowed"
        case .unknownParameter: "Unknown parameter"
        case .invalidParameter: "Invalid parameter"
        case .repeatedParameter: "Repeated parameter"
        case .missingParameter: "Missing parameter"
        case .conflictingParameters: "Conflicting parameters"
        case .invalidJSON: "Invalid JSON body"
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
        case .missingParameter(let name, let expected): "'\(name)' is required: \(expected)."
        case .conflictingParameters(let names):
            "\(names.map { "'\($0)'" }.joined(separator: " and ")) cannot be given together."
        case .invalidJSON(let reason): "The body is not the JSON object this route takes: \(reason)."
        }
    }

    public var headers: HTTPHeaders {
        if case .methodNotAllowed(_, let allowed) = self { return ["Allow": allowed.joined(separator: ", ")] }
        return [:]
    }
}
