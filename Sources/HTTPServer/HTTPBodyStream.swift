/// What a streamed body gives the server when asked for more.
public enum HTTPStreamRead: Sendable {
    /// This many bytes were written into the buffer.
    case bytes(Int)
    /// Nothing now; the stream calls its wake handler when there is something.
    case wait
    /// A clean end: the chunked body ends properly, with these trailer fields.
    case end(trailers: HTTPHeaders)
    /// A failed end: the connection is closed without the last chunk, so that the client
    /// sees an incomplete transfer. The reason goes to the log.
    case fail(reason: String)
}

/// A response body made while it is sent, as a chunked body. The server asks for bytes on
/// its own thread; when the stream has none it answers `.wait`, the connection is suspended
/// (never polled), and the stream calls the wake handler when it has more.
public protocol HTTPBodyStream: AnyObject, Sendable {
    /// Called once, before the first read.
    func start(wake: @escaping @Sendable () -> Void)
    /// Writes the next bytes into `buffer` (at most its count).
    func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTPStreamRead
    /// The response is over: sent, abandoned by its client, or ended by the server stopping.
    func close()
}
