import CMicroHTTPD
import EventLoop

/// A libmicrohttpd connection pointer, handed across threads only to be used on the server's
/// event loop.
struct ConnectionRef: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// One request on one connection, from its headers to its completion: the object
/// libmicrohttpd keeps in the connection's `con_cls` (retained while MHD holds it). Its
/// ``ExchangeMachine`` decides; this class makes the calls.
///
/// Lives on the event loop (libmicrohttpd's callbacks, the socket's watch: the one thread that
/// suspends and resumes connections, so a resume never overtakes the suspend it answers),
/// checked at its entry points, no lock. From elsewhere: ``answer(_:)`` (the responder's
/// task, which may run on an executor of its own), ``bodyDrained()`` (a handler reading a
/// streamed body) and ``cancelTask()`` (the shutdown); they hop to the loop.
final class Exchange: @unchecked Sendable {
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
    /// The request's life; only on the loop (``ServerCore``'s callbacks check it at entry).
    var machine: ExchangeMachine
    /// The task running the responder, cancelled if the client goes away.
    private var task: Task<Void, Never>?
    /// The client hung up (or the server stops) before the task was stored.
    private var cancelled = false
    /// The WebSocket its answer opens, until libmicrohttpd hands the connection over.
    private var upgrade: WebSocketUpgrade?
    /// The connection was taken over (a WebSocket over TLS): libmicrohttpd only closes it.
    private(set) var isTakenOver = false

    /// A held-back client may be probed with interim answers (plain HTTP/1.1 only), at most
    /// ``probeBudget`` times: with libmicrohttpd's own `100 Continue` for a client that asked
    /// for one, no more than Go's client takes (5).
    let probesHangups: Bool
    static let probeBudget = 4
    private var probesLeft = Exchange.probeBudget

    /// Whether one more probe may go to this request's client (taking it).
    func takeProbe() -> Bool {
        loop.preconditionInEventLoop()
        guard probesLeft > 0 else { return false }
        probesLeft -= 1
        return true
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
        self.machine = ExchangeMachine(
            streamsBody: handler.streamsBody, bodyLimit: bodyLimit, refusedByRoute: handler.refusal != nil)
    }

    /// MHD_suspend_connection, on the machine's word, inside libmicrohttpd's callback; a client
    /// that hangs up meanwhile (libmicrohttpd does not look at the socket) cancels the request,
    /// and fails a streamed body, so that a handler waiting for it stops. A client held back in
    /// the middle of its body is probed (``ConnectionWatch/probeWhileWaiting()``): TCP alone
    /// would not tell that it left.
    func suspend(holdingBackBody: Bool = false) {
        loop.preconditionInEventLoop()
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
    private func resume() {
        resumer.resume(connection) { [connectionWatch] in connectionWatch?.stopWaiting() }
    }

    /// The handler of a streamed body read enough: a held-back client may send more. From any thread.
    func bodyDrained() {
        guard loop.inEventLoop else {
            loop.execute { [self] in bodyDrained() }
            return
        }
        if case .resume = machine.wantResume() { resume() }
    }

    /// Stores the answer and resumes the connection if it waits for it; later answers do
    /// nothing. From any thread.
    func answer(_ response: HTTPResponse) {
        guard loop.inEventLoop else {
            loop.execute { [self] in answer(response) }
            return
        }
        task = nil
        if case .resume = machine.answered(response) { resume() }
    }

    /// Keeps the responder's task, to cancel it if the client goes away.
    func started(_ task: Task<Void, Never>) {
        guard case .running = machine.phase else { return }
        self.task = task
        if cancelled { task.cancel() }
    }

    /// Keeps the WebSocket the answer opens until the connection is handed over.
    func keep(_ upgrade: WebSocketUpgrade) {
        loop.preconditionInEventLoop()
        self.upgrade = upgrade
    }

    /// The WebSocket to open, once.
    func takeUpgrade() -> WebSocketUpgrade? {
        loop.preconditionInEventLoop()
        return upgrade.take()
    }

    /// The connection is a WebSocket's now (over TLS, on its own session).
    func takeOver() {
        loop.preconditionInEventLoop()
        isTakenOver = true
    }

    /// Cancels the responder's task: its client is gone, or the server is shutting down. From
    /// any thread.
    func cancelTask() {
        guard loop.inEventLoop else {
            loop.execute { [self] in cancelTask() }
            return
        }
        cancelled = true
        task?.cancel()
    }
}
