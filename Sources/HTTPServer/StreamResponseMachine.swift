/// The life of a streamed response as libmicrohttpd's content reader drives it: events in,
/// actions out, no I/O. Its owner (``StreamResponse``) makes the calls it asks for, on the
/// event loop.
///
/// The body goes out one of two ways, decided at the first read (once the head is on the
/// wire): read into libmicrohttpd's buffer, the connection suspended while the stream has
/// nothing (``SuspendLatch``) and resumed when it wakes; or written to the socket by the
/// stream itself, the connection suspended until the body ends, when one last read ends it
/// as the writer ended it. The server stopping or the client hanging up ends a read body at
/// its next read.
struct StreamResponseMachine {
    enum Mode {
        case undecided, read, direct
    }

    /// What the owner does at a read.
    enum ReadAction {
        /// Hand the socket to the stream and suspend the connection until its writer ends.
        case takeOverSocket
        /// Read the stream into libmicrohttpd's buffer.
        case readStream
        /// End the body: cut by the server or the client (a notice), not by the stream.
        case cut(reason: String)
        /// End the body as the stream's writer ended it (nil: it never said).
        case endAsWritten(HTTPStreamRead?)
    }

    /// What the owner does when the server stops.
    enum StopAction {
        /// End the stream's writer (its body fails after what is queued).
        case endWriter
        /// Resume the suspended connection: its next read ends the body.
        case resume
        case none
    }

    private(set) var mode = Mode.undecided
    private var latch = SuspendLatch()
    /// How a directly written body ended.
    private var directEnding: HTTPStreamRead?
    private var stopping = false
    private var clientGone = false

    var suspended: Bool { latch.suspended }

    /// libmicrohttpd asks for bytes; `canWriteDirectly` says whether the stream could take the
    /// socket (asked only at the first read).
    mutating func read(canWriteDirectly: Bool) -> ReadAction {
        switch mode {
        case .undecided:
            if canWriteDirectly {
                mode = .direct
                return .takeOverSocket
            }
            mode = .read
        case .direct:
            return .endAsWritten(directEnding)
        case .read:
            break
        }
        if clientGone { return .cut(reason: "client hung up") }
        if stopping { return .cut(reason: "server stopping") }
        return .readStream
    }

    /// The stream has nothing now: whether to suspend (false: it woke meanwhile, read again).
    mutating func streamWaits() -> Bool {
        latch.suspend()
    }

    /// The stream has something (or ended): whether to resume the connection now. A directly
    /// written body's connection stays suspended until its writer ends.
    mutating func woken() -> Bool {
        guard case .read = mode else { return false }
        return latch.resume()
    }

    /// The client hung up while the connection was suspended: whether to resume it (its next
    /// read ends the body).
    mutating func clientHungUp() -> Bool {
        clientGone = true
        return woken()
    }

    /// The server stops.
    mutating func stop() -> StopAction {
        stopping = true
        switch mode {
        case .direct: return .endWriter
        case .undecided, .read: return woken() ? .resume : .none
        }
    }

    /// The stream's writer ended the body: the owner resumes the connection, whose next read
    /// ends it this way.
    mutating func directEnded(_ ending: HTTPStreamRead) {
        directEnding = ending
    }
}
