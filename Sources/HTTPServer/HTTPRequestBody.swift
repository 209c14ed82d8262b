import Synchronization

/// Takes a request body as it arrives, piece by piece, on the server's event loop: for a
/// handler that copies each piece straight where it goes (a transfer's buffer) instead of
/// reading pieces one by one (``HTTPRequestBody/attach(_:)``).
public protocol HTTPBodySink: AnyObject, Sendable {
    /// Takes (copies) what it can of `bytes` now; how many. Taking fewer holds the client back
    /// until the sink calls ``HTTPRequestBody/sinkHasRoom()``.
    func take(_ bytes: UnsafeRawBufferPointer) -> Int
    /// The whole body was taken.
    func bodyEnded()
    /// The client went away before the end of the body.
    func bodyFailed()
}

/// A request body read while it arrives, for routes that take bodies of any size. The
/// server offers each piece as libmicrohttpd reads it. A handler either reads the pieces
/// (``read()``: each is copied into a queue; when more than `limit` bytes wait unread, the
/// client is held back until the handler reads), or attaches a sink that takes each piece
/// where libmicrohttpd has it (``attach(_:)``).
public final class HTTPRequestBody: Sendable {
    /// Why reading failed.
    public enum Failure: Error, Sendable {
        /// The client went away before the body was complete.
        case clientGone
    }

    private struct State {
        var chunks: [[UInt8]] = []
        /// Bytes of the first chunk a sink has taken already.
        var taken = 0
        var queued = 0
        var complete = false
        var failed = false
        var received = 0
        var reader: CheckedContinuation<Void, Never>?
        /// The server held the connection back and waits for the queue to drain.
        var heldBack: (@Sendable () -> Void)?
        var sink: (any HTTPBodySink)?
        /// The sink heard the body's end (or failure).
        var sinkEnded = false
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

    /// From now on every piece goes to `sink` as the server reads it (those that came already
    /// first). Call it on the server's event loop.
    public func attach(_ sink: any HTTPBodySink) {
        state.withLock { $0.sink = sink }
        drainToSink()
    }

    /// The sink can take more: what waits goes to it, and a held-back client may send more.
    public func sinkHasRoom() {
        drainToSink()
    }

    // MARK: The server's side

    /// Offers a piece; returns how many of its bytes were taken (all, or fewer when the client
    /// must be held back: the caller keeps the rest, and `release` is called once there is room).
    func offer(_ bytes: UnsafeRawBufferPointer, release: @escaping @Sendable () -> Void) -> Int {
        enum Route { case sink(any HTTPBodySink), queued(CheckedContinuation<Void, Never>?), heldBack }
        let route = state.withLock { state -> Route in
            if let sink = state.sink, state.chunks.isEmpty { return .sink(sink) }
            guard state.queued < limit else {
                state.heldBack = release
                return .heldBack
            }
            state.chunks.append(Array(bytes))
            state.queued += bytes.count
            state.received += bytes.count
            defer { state.reader = nil }
            return .queued(state.reader)
        }
        switch route {
        case .sink(let sink):
            let taken = sink.take(bytes)
            state.withLock { state in
                state.received += taken
                if taken < bytes.count { state.heldBack = release }
            }
            return taken
        case .queued(let reader):
            reader?.resume()
            return bytes.count
        case .heldBack:
            return 0
        }
    }

    /// The body is complete.
    func finish() { end { $0.complete = true } }

    /// The client went away: nobody is held back any more.
    func fail() {
        end {
            $0.failed = true
            $0.heldBack = nil
        }
    }

    private func end(_ change: (inout State) -> Void) {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            change(&state)
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume()
        drainToSink()
    }

    /// Feeds what waits to the sink (in order), then tells it of the end, or releases a
    /// held-back client, as the case may be.
    private func drainToSink() {
        while true {
            enum Next {
                case none
                case piece(any HTTPBodySink, [UInt8], Int)
                case ended(any HTTPBodySink, failed: Bool)
                case release(@Sendable () -> Void)
            }
            let next = state.withLock { state -> Next in
                guard let sink = state.sink, !state.sinkEnded else { return .none }
                if state.failed {
                    state.sinkEnded = true
                    return .ended(sink, failed: true)
                }
                if let first = state.chunks.first { return .piece(sink, first, state.taken) }
                if state.complete {
                    state.sinkEnded = true
                    return .ended(sink, failed: false)
                }
                if let heldBack = state.heldBack {
                    state.heldBack = nil
                    return .release(heldBack)
                }
                return .none
            }
            switch next {
            case .none:
                return
            case .piece(let sink, let chunk, let offset):
                let taken = chunk.withUnsafeBytes { sink.take(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                let done = state.withLock { state -> Bool in
                    state.taken += taken
                    guard state.taken >= chunk.count else { return false }
                    state.chunks.removeFirst()
                    state.queued -= chunk.count
                    state.taken = 0
                    return true
                }
                if !done { return }  // the sink is full: it says when it has room
            case .ended(let sink, let failed):
                if failed { sink.bodyFailed() } else { sink.bodyEnded() }
                return
            case .release(let release):
                release()
                return
            }
        }
    }
}
