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
        /// The watch on the socket while the connection is suspended waiting for the answer.
        var hangupWatch: EventLoop.Watch?
        /// The client hung up (or the server stops) before the task was stored.
        var cancelled = false
    }

    let connection: ConnectionRef
    let request: HTTPRequest
    let handler: HTTPHandler
    /// Set for routes that read the body as it arrives.
    let bodyStream: HTTPRequestBody?
    let resumer: ConnectionResumer
    var loop: EventLoop { resumer.loop }
    let started = ContinuousClock.now
    let state: Mutex<State>

    init(
        connection: ConnectionRef, request: HTTPRequest, handler: HTTPHandler, bodyLimit: Int, resumer: ConnectionResumer
    ) {
        self.connection = connection
        self.request = request
        self.handler = handler
        self.bodyStream = handler.streamsBody ? HTTPRequestBody() : nil
        self.resumer = resumer
        self.state = Mutex(State(machine: ExchangeMachine(streamsBody: handler.streamsBody, bodyLimit: bodyLimit)))
    }

    /// Runs `event` on the machine, under the lock.
    func event<T>(_ event: (inout ExchangeMachine) -> T) -> T {
        state.withLock { event(&$0.machine) }
    }

    /// MHD_suspend_connection, on the machine's word, inside libmicrohttpd's callback; the
    /// socket is watched meanwhile (libmicrohttpd does not look at it): a client that hangs up
    /// cancels the request.
    func suspend() {
        MHD_suspend_connection(connection.pointer)
        watchForHangup()
    }

    /// MHD_resume_connection (the hang-up watch ended first), on the loop.
    func resume() {
        resumer.resume(connection) { [self] in
            if let watch = state.withLock({ $0.hangupWatch.take() }) { loop.unwatch(watch) }
        }
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

    /// Watches the suspended connection's socket: a client that hangs up cancels the task (and
    /// fails a streamed body, so that a handler waiting for it stops).
    private func watchForHangup() {
        let fd = usbhttpd_mhd_connection_fd(connection.pointer)
        guard fd >= 0 else { return }
        let watch: EventLoop.Watch
        do {
            watch = try loop.watch(.init(rawValue: fd), for: [.readHangup, .oneShot]) { [weak self] _ in
                guard let self else { return }
                self.request.boundLogger.notice("client hung up; cancelling its request")
                if let watch = self.state.withLock({ $0.hangupWatch.take() }) { self.loop.unwatch(watch) }
                self.bodyStream?.fail()
                self.cancelTask()
            }
        } catch {
            request.boundLogger.warning("cannot watch the client's socket for a hang-up", metadata: ["error": "\(error)"])
            return
        }
        let stale = state.withLock { state -> Bool in
            // Resumed between the suspend and now: nothing to watch.
            guard state.machine.suspended else { return true }
            state.hangupWatch = watch
            return false
        }
        if stale { loop.unwatch(watch) }
    }

    /// Cancels the responder's task: its client is gone, or the server is shutting down.
    func cancelTask() {
        let task = state.withLock { state -> Task<Void, Never>? in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}
