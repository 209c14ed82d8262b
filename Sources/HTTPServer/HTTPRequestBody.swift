import Synchronization

/// A request body read while it arrives, for routes that take bodies of any size. The
/// server offers each piece as libmicrohttpd reads it; when more than `limit` bytes wait
/// unread, the connection is suspended (the client is held back) until the handler reads.
public final class HTTPRequestBody: Sendable {
    /// Why reading failed.
    public enum Failure: Error, Sendable {
        /// The client went away before the body was complete.
        case clientGone
    }

    private struct State {
        var chunks: [[UInt8]] = []
        var queued = 0
        var complete = false
        var failed = false
        var received = 0
        var reader: CheckedContinuation<Void, Never>?
        /// The server held the connection back and waits for the queue to drain.
        var heldBack: (@Sendable () -> Void)?
    }

    /// Unread bytes above which the client is held back.
    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int = 1 << 20) { self.limit = limit }

    /// The next piece, nil at the end of the body.
    public func read() async throws -> [UInt8]? {
        while true {
            enum Next { case chunk([UInt8], (@Sendable () -> Void)?), end, failed, wait }
            let next = state.withLock { state -> Next in
                if !state.chunks.isEmpty {
                    let chunk = state.chunks.removeFirst()
                    state.queued -= chunk.count
                    var release: (@Sendable () -> Void)?
                    if state.queued < limit, let heldBack = state.heldBack {
                        release = heldBack
                        state.heldBack = nil
                    }
                    return .chunk(chunk, release)
                }
                if state.failed { return .failed }
                if state.complete { return .end }
                return .wait
            }
            switch next {
            case .chunk(let chunk, let release):
                release?()
                return chunk
            case .end: return nil
            case .failed: throw Failure.clientGone
            case .wait:
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if !state.chunks.isEmpty || state.complete || state.failed { return true }
                        state.reader = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }
    }

    /// Bytes received so far.
    public var received: Int { state.withLock { $0.received } }

    // MARK: The server's side

    /// Queues a piece. Returns false when the queue is over the limit: the caller must hold
    /// the client back and call `release` later, which ``read()`` does once it has drained.
    func offer(_ bytes: UnsafeRawBufferPointer, release: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, reader) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard state.queued < limit else {
                state.heldBack = release
                return (false, nil)
            }
            state.chunks.append(Array(bytes))
            state.queued += bytes.count
            state.received += bytes.count
            defer { state.reader = nil }
            return (true, state.reader)
        }
        reader?.resume()
        return accepted
    }

    /// The body is complete.
    func finish() { end { $0.complete = true } }

    /// The client went away.
    func fail() { end { $0.failed = true } }

    private func end(_ change: (inout State) -> Void) {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            change(&state)
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume()
    }
}
