/// Anything that answers requests: the one method the server calls.
public protocol HTTPResponder: Sendable {
    /// Answers `request`. A thrown ``HTTPResponseError`` becomes its problem response, a
    /// `CancellationError` (the client hung up) a 503, any other error a 500 problem.
    func respond(to request: HTTPRequest) async throws -> HTTPResponse

    /// Whether a request to `path` with `method` takes its body as it arrives
    /// (``HTTPRequest/bodyStream``) rather than whole, and so of any size. Asked when the
    /// headers arrive.
    func streamsBody(method: String, path: String) -> Bool

    /// The executor `request`'s task should prefer (`Task(executorPreference:)`), or nil for
    /// Swift's global one. Asked on the server's thread once the request is whole (for a
    /// streamed body, when its headers arrive), so it must answer at once: e.g. the thread of
    /// the device a request is for, which the request then reaches without a thread switch.
    func executor(for request: HTTPRequest) -> (any TaskExecutor)?
}

extension HTTPResponder {
    public func streamsBody(method: String, path: String) -> Bool { false }
    public func executor(for request: HTTPRequest) -> (any TaskExecutor)? { nil }

    /// `respond(to:)` with thrown errors turned into problem responses (``HTTPProblem/answer(for:)``).
    public func response(to request: HTTPRequest) async -> HTTPResponse {
        do {
            return try await respond(to: request)
        } catch {
            if !(error is HTTPResponseError || error is CancellationError) {
                request.logger.error("unhandled error", metadata: ["error": "\(error)"])
            }
            return HTTPProblem.answer(for: error).response(for: request)
        }
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
