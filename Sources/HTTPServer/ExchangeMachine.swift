/// The life of one request on a connection, as libmicrohttpd's callbacks and the responder
/// drive it: events in, actions out, no I/O. Its owner (``Exchange``) keeps it under a lock
/// and makes the calls it asks for (suspending and resuming the connection, queueing the
/// response) after letting go of the lock, on the server's event loop.
///
/// A connection is suspended while the responder works on a request (libmicrohttpd then
/// leaves it alone) and resumed once there is an answer. A route that reads its body as it
/// arrives is suspended only while its handler is behind (the client held back) and after the
/// body, until the answer. A resume asked for while the connection is not suspended undoes
/// the next suspend: libmicrohttpd leaves resuming a connection that is not suspended
/// undefined (in practice it swallows the next suspend, and the request never answers).
struct ExchangeMachine {
    enum Phase {
        /// Headers arrived; a whole body is being read.
        case receiving
        /// The responder runs.
        case running
        /// The responder answered; the response goes out at libmicrohttpd's next call.
        case answered(HTTPResponse)
        /// A response with this status was queued.
        case sent(status: Int)
    }

    /// What the owner does next.
    enum Action {
        case none
        /// Start the responder (with this body, for whole-body routes).
        case start(body: [UInt8])
        /// Queue this response now (MHD_queue_response).
        case queue(HTTPResponse)
        /// Suspend the connection (MHD_suspend_connection), from inside libmicrohttpd's callback.
        case suspend
        /// Resume the connection (MHD_resume_connection).
        case resume
        /// Take the body piece (the client may send more).
        case consume
        /// Leave the body piece where it is without suspending: libmicrohttpd offers it again
        /// at once (a resume was wanted meanwhile).
        case offerAgain
    }

    private(set) var phase = Phase.receiving
    /// The owner suspended the connection on this machine's word and has not resumed it.
    private(set) var suspended = false
    /// A resume was wanted while the connection was not suspended: the next suspend is skipped.
    private var resumeWanted = false
    /// The whole body of a whole-body route, so far.
    private var body: [UInt8] = []
    private(set) var bodyTooLarge = false
    /// The last call for a streamed body came: its end was passed on to the handler.
    private(set) var bodyFinished = false
    let streamsBody: Bool
    let bodyLimit: Int

    init(streamsBody: Bool, bodyLimit: Int) {
        self.streamsBody = streamsBody
        self.bodyLimit = bodyLimit
    }

    /// The first call, with the headers: a streamed-body route starts at once.
    mutating func headersArrived() -> Action {
        guard streamsBody else { return .none }
        phase = .running
        return .start(body: [])
    }

    /// A piece of a whole body: kept, or (past the limit) dropped and remembered.
    mutating func wholeBodyPiece(_ bytes: UnsafeRawBufferPointer) {
        guard !bodyTooLarge else { return }
        if body.count + bytes.count > bodyLimit {
            bodyTooLarge = true
            body = []
        } else {
            body.append(contentsOf: bytes)
        }
    }

    /// A call without data for a whole-body route: the body is complete (the first time), or
    /// the connection was resumed.
    mutating func bodyComplete() -> Action {
        switch phase {
        case .receiving:
            if bodyTooLarge { return .none }  // the owner answers 413 (``refused(status:)``)
            phase = .running
            defer { body = [] }
            return .start(body: body)
        case .answered(let response):
            phase = .sent(status: response.status)
            return .queue(response)
        case .running, .sent:
            return .none
        }
    }

    /// The responder was started and the work it could do at once has run: queue its answer
    /// if it has one, else suspend until it does (a streamed-body route's connection stays
    /// open for the body instead).
    mutating func startedInline() -> Action {
        if case .answered(let response) = phase, !streamsBody {
            phase = .sent(status: response.status)
            return .queue(response)
        }
        guard !streamsBody, case .running = phase else { return .none }
        return suspend()
    }

    /// A piece of a streamed body, after the handler was offered it: `accepted`, or not (the
    /// handler is behind: the client is held back, the piece left where it is, the connection
    /// suspended until the handler has read). An answer came already: the rest is dropped.
    mutating func streamedBodyPiece(accepted: Bool) -> Action {
        if case .answered = phase { return .consume }
        if accepted { return .consume }
        if case .suspend = suspend() { return .suspend }
        return .offerAgain
    }

    /// Whether the owner should offer a streamed-body piece to the handler (no answer yet).
    var wantsBody: Bool {
        if case .running = phase { return true }
        return false
    }

    /// The last call for a streamed body: whether the handler still has to be told that the
    /// body ended (true once, while it runs).
    mutating func streamedBodyEnded() -> Bool {
        guard case .running = phase, !bodyFinished else { return false }
        bodyFinished = true
        return true
    }

    /// The last call for a streamed body, once the handler knows the body ended: queue the
    /// answer if there is one, else suspend until there is.
    mutating func streamedBodyComplete() -> Action {
        if case .answered(let response) = phase {
            phase = .sent(status: response.status)
            return .queue(response)
        }
        guard case .running = phase else { return .none }
        return suspend()
    }

    /// The handler read enough of a streamed body to take more: resume a held-back client.
    mutating func wantResume() -> Action {
        guard suspended else {
            resumeWanted = true
            return .none
        }
        suspended = false
        return .resume
    }

    /// The responder's answer (once; later ones are ignored).
    mutating func answered(_ response: HTTPResponse) -> Action {
        guard case .running = phase else { return .none }
        phase = .answered(response)
        return wantResume()
    }

    /// A response was queued by the owner itself (a 413, a shutdown answer).
    mutating func refused(status: Int) {
        phase = .sent(status: status)
    }

    /// The status of the response queued, if one was.
    var sentStatus: Int? {
        if case .sent(let status) = phase { return status }
        return nil
    }

    private mutating func suspend() -> Action {
        if resumeWanted {
            resumeWanted = false
            return .none
        }
        suspended = true
        return .suspend
    }
}
