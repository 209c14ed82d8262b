/// The life of one request on a connection, as libmicrohttpd's callbacks and the responder
/// drive it: events in, actions out, no I/O. Its owner (``Exchange``) keeps it under a lock
/// and makes the calls it asks for (suspending and resuming the connection, queueing the
/// response) after letting go of the lock, on the server's event loop.
///
/// A connection is suspended while the responder works on a request (libmicrohttpd then
/// leaves it alone) and resumed once there is an answer. A route that reads its body as it
/// arrives is suspended only while its handler is behind (the client held back) and after the
/// body, until the answer. Suspending and resuming follow the one ``SuspendLatch``.
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

    /// Why a request is answered without running its responder.
    enum Refusal {
        /// The server is stopping (503).
        case shuttingDown
        /// Its route refused it from its head (the handler's own refusal: 4xx).
        case route
        /// Its body is, or says it will be, over the limit (413).
        case bodyTooLarge
    }

    /// What the owner does next.
    enum Action {
        case none
        /// Queue this refusal now, without running the responder (then ``refused(status:)``).
        case refuse(Refusal)
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
    private var latch = SuspendLatch()
    /// The owner suspended the connection on this machine's word and has not resumed it.
    var suspended: Bool { latch.suspended }
    /// The whole body of a whole-body route, so far.
    private var body: [UInt8] = []
    private(set) var bodyTooLarge = false
    /// The last call for a streamed body came: its end was passed on to the handler.
    private(set) var bodyFinished = false
    let streamsBody: Bool
    let bodyLimit: Int
    /// The route refused the request from its head.
    let refusedByRoute: Bool

    init(streamsBody: Bool, bodyLimit: Int, refusedByRoute: Bool = false) {
        self.streamsBody = streamsBody
        self.bodyLimit = bodyLimit
        self.refusedByRoute = refusedByRoute
    }

    /// The first call, with the headers: whether the request is let in at all, before any
    /// byte of its body is read. A route's refusal of a request with a body is answered now
    /// (the body is never read: libmicrohttpd then closes the connection), of one without at
    /// the next call (which keeps the connection open). A streamed-body route starts at once; a
    /// declared length over the limit is refused before any `100 Continue`.
    mutating func headersArrived(hasBody: Bool = false, declaredLength: Int? = nil, shuttingDown: Bool = false)
        -> Action
    {
        if shuttingDown { return .refuse(.shuttingDown) }
        if refusedByRoute { return hasBody ? .refuse(.route) : .none }
        if streamsBody {
            phase = .running
            return .start(body: [])
        }
        if let declaredLength, declaredLength > bodyLimit { return .refuse(.bodyTooLarge) }
        return .none
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

    /// A call without data for a whole-body route: the body is complete (the first time:
    /// refused, or the responder starts), or the connection was resumed.
    mutating func bodyComplete(shuttingDown: Bool = false) -> Action {
        switch phase {
        case .receiving:
            if bodyTooLarge { return .refuse(.bodyTooLarge) }
            if refusedByRoute { return .refuse(.route) }
            if shuttingDown { return .refuse(.shuttingDown) }
            phase = .running
            defer { body = [] }
            return .start(body: body)
        case .answered(let response):
            sent(response.status)
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
            sent(response.status)
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
            sent(response.status)
            return .queue(response)
        }
        guard case .running = phase else { return .none }
        return suspend()
    }

    /// The handler read enough of a streamed body to take more: resume a held-back client.
    mutating func wantResume() -> Action {
        latch.resume() ? .resume : .none
    }

    /// The responder's answer (once; later ones are ignored).
    mutating func answered(_ response: HTTPResponse) -> Action {
        guard case .running = phase else { return .none }
        phase = .answered(response)
        return wantResume()
    }

    /// A response was queued by the owner itself (a 413, a shutdown answer).
    mutating func refused(status: Int) {
        sent(status)
    }

    /// The status of the response queued, if one was (kept beside the phase: read after the
    /// exchange ends, for its log line).
    private(set) var sentStatus: Int?

    private mutating func sent(_ status: Int) {
        phase = .sent(status: status)
        sentStatus = status
    }

    private mutating func suspend() -> Action {
        latch.suspend() ? .suspend : .none
    }
}
