/// An error that knows its HTTP answer: a status and an RFC 9457 problem document
/// (`application/problem+json`) with a stable machine `code`.
public protocol HTTPResponseError: Error {
    var status: Int { get }
    /// A stable, machine-readable code, kebab-case, e.g. "device-not-found".
    var code: String { get }
    /// A short summary that does not change between occurrences.
    var title: String { get }
    /// What happened this time.
    var detail: String { get }
    /// Extra header fields (e.g. `Allow`, `Retry-After`).
    var headers: HTTPHeaders { get }
}

extension HTTPResponseError {
    public var headers: HTTPHeaders { [:] }

    public func response(for request: HTTPRequest) -> HTTPResponse {
        let document = ProblemDocument(
            type: "urn:usbhttpd:problem:\(code)", title: title, status: status, detail: detail,
            code: code, instance: request.path, requestId: request.id)
        var headers = self.headers
        headers.set("Content-Type", "application/problem+json")
        return HTTPResponse(status: status, headers: headers, body: document.json)
    }
}

/// The body of a problem response.
public struct ProblemDocument: Codable, Sendable, Equatable {
    /// The document in the API's JSON style (as ``JSON/encode(_:)`` writes it: pretty, keys
    /// sorted, snake_case), written directly: problems answer scanners and typos, as cheaply as
    /// the server can.
    public var json: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256 + detail.utf8.count + instance.utf8.count)
        func field(_ name: StaticString, _ value: String, last: Bool = false) {
            output += Array("  \"".utf8)
            output.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            output += Array("\" : ".utf8)
            JSON.appendString(value, to: &output)
            output += last ? [0x0a] : [0x2c, 0x0a]
        }
        output += [0x7b, 0x0a]
        field("code", code)
        field("detail", detail)
        field("instance", instance)
        field("request_id", requestId)
        output += Array("  \"status\" : \(status),\n".utf8)
        field("title", title)
        field("type", type, last: true)
        output += [0x7d, 0x0a]
        return output
    }

    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    public var code: String
    public var instance: String
    public var requestId: String

    public init(
        type: String, title: String, status: Int, detail: String, code: String, instance: String, requestId: String
    ) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.code = code
        self.instance = instance
        self.requestId = requestId
    }
}

/// A problem as plain values.
public struct HTTPProblem: HTTPResponseError, Sendable {
    public var status: Int
    public var code: String
    public var title: String
    public var detail: String
    public var headers: HTTPHeaders

    public init(status: Int, code: String, title: String, detail: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers
    }

    public static let internalError = HTTPProblem(
        status: 500, code: "internal-error", title: "Internal error",
        detail: "The server failed to answer this request; its log has the details.")

    public static func bodyTooLarge(limit: Int) -> HTTPProblem {
        HTTPProblem(
            status: 413, code: "body-too-large", title: "Request body too large",
            detail: "This request's body may be at most \(limit) bytes.")
    }

    /// The request's task was cancelled: its client hung up (so nobody reads this) or the server stops.
    public static let cancelled = HTTPProblem(
        status: 503, code: "request-cancelled", title: "Request cancelled",
        detail: "The request was cancelled before it finished.")

    public static let shuttingDown = HTTPProblem(
        status: 503, code: "shutting-down", title: "Shutting down",
        detail: "The server is shutting down.", headers: ["Retry-After": "5"])
}
