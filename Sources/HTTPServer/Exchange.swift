import CMicroHTTPD
import Synchronization

/// A libmicrohttpd connection pointer, handed across threads only to
/// MHD_resume_connection, which is thread-safe.
struct ConnectionRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One request on one connection, from its headers to its completion: the object
/// libmicrohttpd keeps in the connection's `con_cls` (retained while MHD holds it).
final class Exchange: Sendable {
    enum Phase {
        /// Headers arrived; body bytes may follow.
        case receiving
        /// The responder runs; the connection is suspended.
        case processing
        /// The responder answered; the connection is resumed and the next
        /// access-handler call queues the response.
        case ready(HTTPResponse)
        /// A response was queued with this status.
        case sent(status: Int)
    }

    struct State {
        var phase: Phase = .receiving
        var body: [UInt8] = []
        var bodyTooLarge = false
        /// The task running the responder, cancelled if the client goes away.
        var task: Task<Void, Never>?
        /// The watch on the socket while the connection is suspended.
        var hangupWatch: DisconnectWatcher.Registration?
        /// The client hung up before the task was stored.
        var clientGone = false
        /// A streamed-body exchange whose connection is suspended (held back, or waiting for
        /// the answer after the body): whoever clears this resumes it. Set only together with
        /// the call that suspends, under this lock.
        var suspended = false
        /// A resume was asked for while the connection was not suspended: the next suspend
        /// is undone at once.
        var resumeWanted = false
        var bodyFinished = false
    }

    let connection: ConnectionRef
    let request: HTTPRequest
    /// Set for routes that read the body as it arrives; the responder runs from the headers on,
    /// and the connection is suspended only when held back or waiting for the answer.
    let bodyStream: HTTPRequestBody?
    let started = ContinuousClock.now
    let state = Mutex(State())

    init(connection: ConnectionRef, request: HTTPRequest, bodyStream: HTTPRequestBody? = nil) {
        self.connection = connection
        self.request = request
        self.bodyStream = bodyStream
    }

    /// Suspends a streamed-body connection (MHD_suspend_connection), on libmicrohttpd's thread
    /// inside its access handler. The call and the flag change under one lock, so a resumer
    /// that sees the flag resumes a connection that is suspended: libmicrohttpd leaves resuming
    /// one that is not undefined, and in practice that resume stays pending and swallows the
    /// suspend of the next request on the keep-alive connection, which then never answers. A
    /// resume asked for before the suspend undoes it at once.
    func suspend() {
        let undo = state.withLock { state -> Bool in
            MHD_suspend_connection(connection.pointer)
            if state.resumeWanted {
                state.resumeWanted = false
                return true
            }
            state.suspended = true
            return false
        }
        if undo { MHD_resume_connection(connection.pointer) }
    }

    /// Resumes a streamed-body connection if it is suspended, or has the next suspend undone.
    func resumeIfSuspended() {
        let resume = state.withLock { state -> Bool in
            guard state.suspended else {
                state.resumeWanted = true
                return false
            }
            state.suspended = false
            return true
        }
        if resume { MHD_resume_connection(connection.pointer) }
    }

    /// Stores the answer, stops watching the socket and resumes the connection, once: later
    /// calls do nothing.
    func answer(_ response: HTTPResponse) {
        let streamed = bodyStream != nil
        let answered = state.withLock { state -> (Bool, DisconnectWatcher.Registration?) in
            guard case .processing = state.phase else { return (false, nil) }
            state.phase = .ready(response)
            state.task = nil
            defer { state.hangupWatch = nil }
            // A streamed-body connection is suspended only at times (if it is about to be, that
            // suspend is undone); the others always are here.
            let resume = streamed ? state.suspended : true
            if streamed && !state.suspended { state.resumeWanted = true }
            state.suspended = false
            return (resume, state.hangupWatch)
        }
        answered.1?.cancel()
        if answered.0 { MHD_resume_connection(connection.pointer) }
    }

    /// Keeps the responder's task, to cancel it if the client goes away.
    func started(_ task: Task<Void, Never>, watch: DisconnectWatcher.Registration?) {
        enum Next { case none, cancelTask, unwatch }
        let next = state.withLock { state -> Next in
            // The task may have answered already: then there is nothing left to watch.
            guard case .processing = state.phase else { return .unwatch }
            state.hangupWatch = watch
            state.task = task
            return state.clientGone ? .cancelTask : .none
        }
        switch next {
        case .none: break
        case .cancelTask: task.cancel()
        case .unwatch: watch?.cancel()
        }
    }

    /// Cancels the responder's task: its client is gone, or the server is shutting down.
    func cancelTask() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.clientGone = true
            return state.task
        }
        task?.cancel()
    }
}
