/// Anything that answers requests: its one method resolves what answers a request, once,
/// when the request's headers arrive (its route, who sent it, whether it is let in), and the
/// server runs what it gives.
public protocol HTTPResponder: Sendable {
    /// What answers `request`, from its head (its body is not read yet). Asked on the server's
    /// thread when the headers arrive, so it must answer at once.
    func handler(for request: HTTPRequest) -> HTTPHandler
}

/// How one request is answered, as its responder resolved it from the request's head.
public struct HTTPHandler: Sendable {
    /// The body is read as it arrives (``HTTPRequest/bodyStream``) rather than whole, and so
    /// may be of any size.
    public var streamsBody: Bool
    /// The executor the request's task prefers; nil for the server's event loop (where the
    /// request then runs from its first line without a thread switch).
    public var executor: (any TaskExecutor)?
    /// Answers the request. A thrown ``HTTPResponseError`` becomes its problem response, a
    /// `CancellationError` (the client hung up) a 503, any other error a 500 problem.
    public var respond: @Sendable (HTTPRequest) async throws -> HTTPResponse
    /// The answer, decided from the head alone (not found, not let in): the handler does not
    /// run, and the server does not read a body that was coming (it answers at once and closes
    /// the connection then).
    public var refusal: HTTPResponse?
    /// Adds what every answer to this request carries (CORS headers, say), problems included.
    public var decorate: (@Sendable (inout HTTPResponse) -> Void)?
    /// Answers the request at once when it can, without waiting for anything (nil: not now,
    /// ``respond`` runs). The server then answers inside libmicrohttpd's callback with no task
    /// at all: what a health check, a metrics scrape or a device list already known costs.
    /// Ignored for a route that streams its body.
    public var respondNow: (@Sendable (HTTPRequest) throws -> HTTPResponse?)?

    public init(
        streamsBody: Bool = false, executor: (any TaskExecutor)? = nil,
        decorate: (@Sendable (inout HTTPResponse) -> Void)? = nil,
        respond: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse
    ) {
        self.streamsBody = streamsBody
        self.executor = executor
        self.decorate = decorate
        self.respond = respond
    }

    /// A handler that answers `response` from the head.
    public static func refuse(_ response: HTTPResponse) -> HTTPHandler {
        var handler = HTTPHandler { _ in response }
        handler.refusal = response
        return handler
    }

    /// ``respondNow``'s answer, if it has one now, with a thrown error turned into its problem
    /// response, decorated.
    public func responseNow(to request: HTTPRequest) -> HTTPResponse? {
        guard let respondNow, !streamsBody, refusal == nil else { return nil }
        var response: HTTPResponse
        do {
            guard let now = try respondNow(request) else { return nil }
            response = now
        } catch {
            response = Self.problem(error, for: request)
        }
        decorate?(&response)
        return response
    }

    /// The refusal, else ``respondNow``'s answer, else `respond`'s, with thrown errors turned
    /// into problem responses (``HTTPProblem/answer(for:)``), decorated.
    public func response(to request: HTTPRequest) async -> HTTPResponse {
        if let now = responseNow(to: request) { return now }
        var response: HTTPResponse
        if let refusal {
            response = refusal
        } else {
            do {
                response = try await respond(request)
            } catch {
                response = Self.problem(error, for: request)
            }
        }
        decorate?(&response)
        return response
    }

    private static func problem(_ error: any Error, for request: HTTPRequest) -> HTTPResponse {
        if !(error is HTTPResponseError || error is CancellationError) {
            request.logger.error("unhandled error", metadata: ["error": "\(error)"])
        }
        return HTTPProblem.answer(for: error).response(for: request)
    }
}

extension HTTPResponder {
    /// Resolves and answers `request` in one step (for callers that hold a whole request, such as tests).
    public func response(to request: HTTPRequest) async -> HTTPResponse {
        await handler(for: request).response(to: request)
    }
}

extension HTTPProblem {
    /// What a thrown error answers: itself when it knows its answer, 503 `request-cancelled`
    /// for a cancellation (the client hung up), else 500 `internal-error`.
    public static func answer(for error: any Error) -> any HTTPResponseError {
        switch error {
        case let known as HTTPResponseError: known
        case is CancellationError: HTTPProblem.cancelled
        default: HTTPProblem.internalError
        }
    }
}
