/// How the server listens and what it accepts.
public struct HTTPServerConfiguration: Sendable {
    /// The address to bind: an IPv4 or IPv6 literal, or a name that resolves to one.
    public var host: String = "127.0.0.1"
    /// The TCP port; 0 lets the kernel choose (read ``HTTPServer/port`` after start).
    public var port: UInt16 = 8080
    /// The largest request body read into memory, in bytes; larger ones get 413.
    public var maxBodySize: Int = 1 << 20
    /// libmicrohttpd's per-connection memory (MHD_OPTION.CONNECTION_MEMORY_LIMIT).
    /// A streamed body is written from this buffer: a chunk is at most this minus about
    /// 300 bytes, so it is sized for one 256 KiB transfer per chunk. (Pages a connection does
    /// not touch are never resident.)
    public var connectionMemoryLimit: Int = 264 * 1024
    /// Seconds an idle connection may stay open (MHD_OPTION.CONNECTION_TIMEOUT); 0 for never.
    public var idleTimeout: Int = 60
    /// Seconds a shutdown waits for requests in progress before answering them 503.
    public var shutdownGrace: Double = 5

    public init() {}
}
