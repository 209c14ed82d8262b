import CMicroHTTPD
import EventLoop
import Synchronization

/// A libmicrohttpd connection pointer, handed across threads only to be used on the server's
/// event loop.
struct ConnectionRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One request on one connection, from its headers to its completion: the object
/// libmicrohttpd keeps in the connection's `con_cls` (retained while MHD holds it). Its
/// ``ExchangeMachine`` decides; this class makes the calls, outside the machine's lock and on
/// the event loop (the one thread that suspends and resumes connections, so a resume never
/// overtakes the suspend it answers).
final class Exchange: Sendable {
    struct State {
        var machine: ExchangeMachine
        /// The task running the responder, cancelled if the client goes away.
        var task: Task<Void, Never>?
        /// The client hung up (or the server stops) before the task was stored.
        var cancelled = false
        /// The WebSocket its answer opens, until libmicrohttpd hands the connection over.
        var upgrade: WebSocketUpgrade?
        /// The connection was taken over (a WebSocket over TLS): libmicrohttpd only closes it.
        var takenOver = false
    }

    let connection: ConnectionRef
    let request: HTTPRequest
    let handler: HTTPHandler
    /// Set for routes that read the body as it arrives.
    let bodyStream: HTTPRequestBody?
    let resumer: ConnectionResumer
    /// The watch on the connection's socket (nil if it could not be watched).
    let connectionWatch: ConnectionWatch?
    var loop: EventLoop { resumer.loop }
    let started = ContinuousClock.now
    let state: Mutex<State>

    /// A held-back client may be probed with interim answers (plain HTTP/1.1 only), at most
    /// ``probeBudget`` times: with libmicrohttpd's own `100 Continue` for a client that asked
    /// for one, no more than Go's client takes (5).
    let probesHangups: Bool
    static let probeBudget = 4
    private let probesLeft = Atomic(Exchange.probeBudget)

    /// Whether one more probe may go to this request's client (taking it).
    func takeProbe() -> Bool {
        probesLeft.wrappingSubtract(1, ordering: .relaxed).oldValue > 0
    }

    init(
        connection: ConnectionRef, request: HTTPRequest, handler: HTTPHandler, bodyLimit: Int, resumer: ConnectionResumer,
        probesHangups: Bool = false
    ) {
        self.probesHangups = probesHangups
        self.connection = connection
        self.request = request
        self.handler = handler
        self.bodyStream = handler.streamsBody ? HTTPRequestBody() : nil
        self.resumer = resumer
        self.connectionWatch = ConnectionWatch.of(connection.pointer)
        self.state = Mutex(State(machine: ExchangeMachine(streamsBody: handler.streamsBody, bodyLimit: bodyLimit)))
    }

    /// Runs `event` on the machine, under the lock.
    func event<T>(_ event: (inout ExchangeMachine) -> T) -> T {
        state.withLock { event(&$0.machine) }
    }

    /// MHD_suspend_connection, on the machine's word, inside libmicrohttpd's callback; a client
    /// that hangs up meanwhile (libmicrohttpd does not look at the socket) cancels the request,
    /// and fails a streamed body, so that a handler waiting for it stops. A client held back in
    /// the middle of its body is probed (``ConnectionWatch/probeWhileWaiting()``): TCP alone
    /// would not tell that it left.
    func suspend(holdingBackBody: Bool = false) {
        MHD_suspend_connection(connection.pointer)
        let waiting = connectionWatch?.waitForHangup { [weak self] in
            guard let self else { return }
            self.request.boundLogger.notice("client hung up; cancelling its request")
            self.bodyStream?.fail()
            self.cancelTask()
        }
        if waiting == true, holdingBackBody, probesHangups {
            connectionWatch?.probeWhileWaiting { [weak self] in self?.takeProbe() ?? false }
        }
    }

    /// MHD_resume_connection (the hang-up watch ended first), on the loop.
    func resume() {
        resumer.resume(connection) { [connectionWatch] in connectionWatch?.stopWaiting() }
    }

    /// The handler of a streamed body read enough: a held-back client may send more.
    func bodyDrained() {
        if case .resume = event({ $0.wantResume() }) { resume() }
    }

    /// Stores the answer and resumes the connection if it waits for it; later answers do nothing.
    func answer(_ response: HTTPResponse) {
        let action = state.withLock { state -> ExchangeMachine.Action in
            state.task = nil
            return state.machine.answered(response)
        }
        if case .resume = action { resume() }
    }

    /// Keeps the responder's task, to cancel it if the client goes away.
    func started(_ task: Task<Void, Never>) {
        let cancel = state.withLock { state -> Bool in
            guard case .running = state.machine.phase else { return false }
            state.task = task
            return state.cancelled
        }
        if cancel { task.cancel() }
    }

    /// Keeps the WebSocket the answer opens until the connection is handed over.
    func keep(_ upgrade: WebSocketUpgrade) { state.withLock { $0.upgrade = upgrade } }

    /// The WebSocket to open, once.
    func takeUpgrade() -> WebSocketUpgrade? { state.withLock { $0.upgrade.take() } }

    /// The connection is a WebSocket's now (over TLS, on its own session).
    func takeOver() { state.withLock { $0.takenOver = true } }

    var isTakenOver: Bool { state.withLock { $0.takenOver } }

    /// Cancels the responder's task: its client is gone, or the server is shutting down.
    func cancelTask() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}
