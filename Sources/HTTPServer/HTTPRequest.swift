import Logging
import Synchronization

/// A request as the server hands it to a responder, its body read whole.
public struct HTTPRequest: Sendable {
    /// The method as sent, e.g. "GET".
    public var method: String
    /// The protocol version as sent, e.g. "HTTP/1.1".
    public var version = "HTTP/1.1"
    /// The client's IP address, as text ("" when not known).
    public var remoteAddress = ""
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
    /// The server's logger. It carries no per-request metadata itself (setting metadata costs
    /// a handler work on every request, logged or not): lines logged inside the request's task
    /// get `request.id` and the ``annotations`` from ``RequestLogContext/metadataProvider``;
    /// lines logged elsewhere pass ``logMetadata``.
    public var logger: Logger
    /// What the responder learned about the request that its log lines should carry (the route
    /// template, who made it), beside `request.id`. Shared by every copy.
    public let annotations: RequestAnnotations

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
        self.annotations = RequestAnnotations(metadata)
    }

    /// Whether a body comes with the request (a Content-Length above 0, or a Transfer-Encoding).
    public var hasBody: Bool {
        if let length = headers["Content-Length"] { return length != "0" }
        return headers["Transfer-Encoding"] != nil
    }

    /// `request.id` and the annotations: the metadata of a line about this request logged
    /// outside its task (made only when called).
    public var logMetadata: Logger.Metadata {
        var metadata = annotations.metadata
        metadata["request.id"] = .string(id)
        return metadata
    }

    /// A logger for lines about this request logged outside its task.
    public var boundLogger: BoundLogger { BoundLogger(logger, metadata: logMetadata) }
}

/// The request a task works for, for its log lines: a task-local that
/// ``metadataProvider`` reads only when a line is logged.
public struct RequestLogContext: Sendable {
    public let id: String
    public let annotations: RequestAnnotations

    public init(id: String, annotations: RequestAnnotations) {
        self.id = id
        self.annotations = annotations
    }

    @TaskLocal public static var current: RequestLogContext?

    /// Gives every line logged inside a request's task `request.id` and the request's
    /// annotations (bootstrap the logging system with it).
    public static let metadataProvider = Logger.MetadataProvider {
        guard let current else { return [:] }
        var metadata = current.annotations.metadata
        metadata["request.id"] = .string(current.id)
        return metadata
    }
}

/// Log metadata added while a request is handled, for its closing log line. Thread-safe.
public final class RequestAnnotations: Sendable {
    private let storage: Mutex<Logger.Metadata>

    public init(_ metadata: Logger.Metadata = [:]) { storage = Mutex(metadata) }

    public subscript(key: String) -> Logger.MetadataValue? {
        get { storage.withLock { $0[key] } }
        set { storage.withLock { $0[key] = newValue } }
    }

    public var metadata: Logger.Metadata { storage.withLock { $0 } }
}

/// Request ids: a client's own `X-Request-Id` when it is short and plain, a new one otherwise.
public enum RequestID {
    /// A random start, read once (one getrandom call for the process).
    private static let seed = UInt64.random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(0)

    /// 16 hex digits, unique in the process and not guessable from earlier ones: a counter
    /// from a random start, mixed by splitmix64 (a bijection), so no system call per request.
    public static func make() -> String {
        var z = seed &+ counter.wrappingAdd(1, ordering: .relaxed).oldValue &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return String(unsafeUninitializedCapacity: 16) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for index in 0..<16 {
                buffer[index] = digits.utf8Start[Int((z >> UInt64(60 - 4 * index)) & 0xf)]
            }
            return 16
        }
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

/// A logger whose lines always carry `metadata` (a request's, say), even when logged inside
/// another request's task: explicit metadata wins over ``RequestLogContext``'s. For what
/// outlives its request's task (a stream, a connection's end).
public struct BoundLogger: Sendable {
    public let logger: Logger
    public let metadata: Logger.Metadata

    public init(_ logger: Logger, metadata: Logger.Metadata) {
        self.logger = logger
        self.metadata = metadata
    }

    /// The same, with `key` set too.
    public func with(_ key: String, _ value: Logger.MetadataValue) -> BoundLogger {
        var metadata = metadata
        metadata[key] = value
        return BoundLogger(logger, metadata: metadata)
    }

    public func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, _ extra: Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        logger.log(level: level, message(), metadata: extra.isEmpty ? metadata : metadata.merging(extra) { $1 })
    }

    public func info(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        log(.info, message(), extra)
    }

    public func notice(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        log(.notice, message(), extra)
    }

    public func warning(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        log(.warning, message(), extra)
    }
}
