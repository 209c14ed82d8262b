/// How the server listens and what it accepts.
public struct HTTPServerConfiguration: Sendable {
    /// The address to bind: an IPv4 or IPv6 literal, or a name that resolves to one.
    public var host: String = "127.0.0.1"
    /// The TCP port; 0 lets the kernel choose (read ``HTTPServer/port`` after start).
    public var port: UInt16 = 8080
    /// The largest request body read into memory, in bytes; larger ones get 413.
    public var maxBodySize: Int = 1 << 20
    /// libmicrohttpd's per-connection memory (MHD_OPTION.CONNECTION_MEMORY_LIMIT): the
    /// request's headers, libmicrohttpd's read and write buffers. libmicrohttpd zeroes all of it
    /// between the requests of a keep-alive connection, so it is kept small: streamed responses
    /// on plain HTTP/1.1 write their chunks themselves and need none of it; over TLS a chunk is
    /// at most this minus about 300 bytes.
    public var connectionMemoryLimit: Int = 32 * 1024
    /// Seconds a connection may go without sending or receiving a byte
    /// (MHD_OPTION.CONNECTION_TIMEOUT), whether idle between requests or a client that stopped
    /// halfway through one; 0 for never. (A suspended connection, waiting on the server, is
    /// not timed out.)
    public var idleTimeout: Int = 30
    /// The most connections open at once (MHD_OPTION.CONNECTION_LIMIT); more are refused at
    /// accept. Bounded by the process's file descriptor limit too.
    public var connectionLimit: Int = 512
    /// The most connections one client may hold: an address, or on loopback an address and a
    /// local user (``ClientConnections``); 0 for no limit.
    public var perClientConnectionLimit: Int = 64
    /// Serve HTTPS with this certificate and key (through libmicrohttpd's GnuTLS).
    public var tls: TLS?
    /// Seconds a shutdown waits for requests in progress before answering them 503.
    public var shutdownGrace: Double = 5

    public init() {}

    /// A certificate chain and its private key, PEM.
    public struct TLS: Sendable {
        public var certificatePEM: String
        public var privateKeyPEM: String

        public init(certificatePEM: String, privateKeyPEM: String) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
        }
    }
}
