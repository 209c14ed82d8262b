/// Anything that answers requests: the one method the server calls.
public protocol HTTPResponder: Sendable {
    /// Answers `request`. A thrown ``HTTPResponseError`` becomes its problem response, a
    /// `CancellationError` (the client hung up) a 503, any other error a 500 problem.
    func respond(to request: HTTPRequest) async throws -> HTTPResponse

    /// Whether a request to `path` with `method` takes its body as it arrives
    /// (``HTTPRequest/bodyStream``) rather than whole, and so of any size. Asked when the
    /// headers arrive.
    func streamsBody(method: String, path: String) -> Bool
}

extension HTTPResponder {
    public func streamsBody(method: String, path: String) -> Bool { false }

    /// `respond(to:)` with thrown errors turned into problem responses.
    public func response(to request: HTTPRequest) async -> HTTPResponse {
        do {
            return try await respond(to: request)
        } catch let error as HTTPResponseError {
            return error.response(for: request)
        } catch is CancellationError {
            return HTTPProblem.cancelled.response(for: request)
        } catch {
            request.logger.error("unhandled error", metadata: ["error": "\(error)"])
            return HTTPProblem.internalError.response(for: request)
        }
    }
}
