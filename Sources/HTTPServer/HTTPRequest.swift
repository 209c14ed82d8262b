import Logging
import Synchronization

/// A request as the server hands it to a responder, its body read whole.
public struct HTTPRequest: Sendable {
    /// The method as sent, e.g. "GET".
    public var method: String
    /// The path, percent-decoded by libmicrohttpd, without the query.
    public var path: String
    /// Query arguments in the order sent, percent-decoded.
    public var query: [(name: String, value: String)]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// For routes that take bodies of any size: the body as it arrives (and `body` empty).
    public var bodyStream: HTTPRequestBody?
    /// The id this request carries in the `X-Request-Id` response header and in every log line.
    public var id: String
    /// A logger with `request.id` (and the metadata given to the initializer) set.
    public var logger: Logger
    /// What the responder learned about the request that the server's closing "request" log
    /// line should carry too (the route template, who made it). Shared by every copy.
    public let annotations = RequestAnnotations()

    public init(
        method: String, path: String, query: [(name: String, value: String)] = [],
        headers: HTTPHeaders = [:], body: [UInt8] = [], id: String = RequestID.make(),
        logger: Logger = Logger(label: "usbhttpd.http"), metadata: Logger.Metadata = [:]
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.id = id
        self.logger = logger
        // One assignment for all of them: a log handler may redo work on every change
        // (StreamLogHandler formats its whole metadata each time).
        var all = logger.handler.metadata
        all.merge(metadata) { $1 }
        all["request.id"] = .string(id)
        self.logger.handler.metadata = all
    }
}

/// Log metadata added while a request is handled, for its closing log line. Thread-safe.
public final class RequestAnnotations: Sendable {
    private let storage = Mutex<Logger.Metadata>([:])

    public init() {}

    public subscript(key: String) -> Logger.MetadataValue? {
        get { storage.withLock { $0[key] } }
        set { storage.withLock { $0[key] = newValue } }
    }

    public var metadata: Logger.Metadata { storage.withLock { $0 } }
}

/// Request ids: a client's own `X-Request-Id` when it is short and plain, a new random one otherwise.
public enum RequestID {
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// `candidate` if it is 1-64 characters of [A-Za-z0-9._-], else a new id.
    public static func accept(_ candidate: String?) -> String {
        guard let candidate, (1...64).contains(candidate.utf8.count),
            candidate.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a)
                    || (byte >= 0x61 && byte <= 0x7a) || byte == 0x2e || byte == 0x5f || byte == 0x2d
            })
        else { return make() }
        return candidate
    }
}
