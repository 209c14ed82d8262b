import CMicroHTTPD
import EventLoop
import Synchronization

/// Resumes suspended connections, on the event loop, and makes libmicrohttpd look at them.
///
/// In external epoll mode libmicrohttpd has no inter-thread channel: MHD_resume_connection
/// only marks the connection, and the next MHD_run picks it up. So a resume also asks the
/// server's deadline source for an immediate MHD_run (``takeRunRequest()``). All resumes
/// happen on the loop (one from another thread is queued there), the one thread that also
/// suspends: a resume can never overtake the suspend it answers.
final class ConnectionResumer: Sendable {
    let loop: EventLoop
    private let runWanted = Atomic<Bool>(false)

    init(loop: EventLoop) { self.loop = loop }

    /// Resumes `connection` on the loop, after `before` (which stops watching its socket).
    func resume(_ connection: ConnectionRef, before: @escaping @Sendable () -> Void = {}) {
        if loop.inEventLoop {
            before()
            MHD_resume_connection(connection.pointer)
            runWanted.store(true, ordering: .relaxed)
        } else {
            loop.execute { [self] in
                before()
                MHD_resume_connection(connection.pointer)
                runWanted.store(true, ordering: .relaxed)
            }
        }
    }

    /// libmicrohttpd must run at once (it resumed a connection itself: an upgraded one it closes).
    func requestRun() {
        runWanted.store(true, ordering: .relaxed)
        if !loop.inEventLoop { loop.execute {} }
    }

    /// Whether a resume happened since the last call: then MHD_run must run now.
    func takeRunRequest() -> Bool {
        runWanted.exchange(false, ordering: .relaxed)
    }

    /// Whether a resume waits for MHD_run (without taking the request).
    var runRequested: Bool { runWanted.load(ordering: .relaxed) }
}
