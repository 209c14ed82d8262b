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
    }

    let connection: ConnectionRef
    let request: HTTPRequest
    let started = ContinuousClock.now
    let state = Mutex(State())

    init(connection: ConnectionRef, request: HTTPRequest) {
        self.connection = connection
        self.request = request
    }

    /// Stores the answer and resumes the connection, once: later calls do nothing.
    func answer(_ response: HTTPResponse) {
        let answered = state.withLock { state -> Bool in
            guard case .processing = state.phase else { return false }
            state.phase = .ready(response)
            return true
        }
        if answered { MHD_resume_connection(connection.pointer) }
    }
}
