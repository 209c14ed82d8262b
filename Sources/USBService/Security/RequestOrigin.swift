import Glibc
import HTTPRouting
import HTTPServer

/// Who may reach the API from a browser, and by which name: the defence against web pages.
///
/// - `Host`: a page on another site that rebinds its DNS name to this machine (DNS rebinding)
///   sends its own name as `Host`. Only loopback names, IP literals (which no page can rebind),
///   this machine's own name and the names given (``hosts``, `*.suffix` allowed) are
///   accepted; any other answers 421 `misdirected-request`.
/// - `Origin`: a page on another origin can send a POST without a CORS preflight (a form, a
///   `text/plain` fetch) or load a GET from `<img>`. A request from a foreign origin (its
///   `Origin`, or `Sec-Fetch-Site: cross-site`/`same-site` with no `Origin`) may only read (a
///   GET or HEAD of a route with the `read` scope, whose answer the browser keeps from the page
///   anyway) that does not hold its connection open (the event stream and long polls are
///   refused too, from the head, before they hold anything); anything else answers 403
///   `foreign-origin`. Origins given (``origins``) are not
///   foreign: they get CORS (``CrossOrigin``).
public struct RequestOrigins: Sendable {
    /// Names accepted as `Host` beyond loopback names, IP literals and this machine's name:
    /// exact names, or `*.suffix` for any name under it. Compared without case.
    public var hosts: [String]
    /// Origins (`scheme://host[:port]`) whose pages may use the API through CORS.
    public var origins: [String]

    public init(hosts: [String] = [], origins: [String] = []) {
        self.hosts = hosts.map { $0.lowercased() }
        self.origins = origins.map { $0.lowercased() }
    }

    /// This machine's own name (gethostname), which a page cannot take over.
    static let machineName: String? = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name.lowercased()
    }()

    /// The name in a `Host` value, without its port, lowercased; IPv6 literals keep their brackets.
    static func name(ofHost host: String) -> String {
        let lower = host.lowercased()
        if lower.hasPrefix("[") {
            if let end = lower.firstIndex(of: "]") { return String(lower[...end]) }
            return lower
        }
        if let colon = lower.lastIndex(of: ":") { return String(lower[..<colon]) }
        return lower
    }

    /// Whether `host` (a `Host` value) names this server as it may be named. No `Host` at all
    /// is accepted: HTTP/1.1 requires one (libmicrohttpd refuses a request without), and a
    /// browser always sends one, so only HTTP/1.0 tools and in-process callers come without.
    public func accepts(host: String?) -> Bool {
        guard let host else { return true }
        let name = Self.name(ofHost: host)
        if name.isEmpty { return false }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        if Self.isIPLiteral(name) { return true }
        if let machine = Self.machineName, name == machine { return true }
        return hosts.contains { pattern in
            pattern.hasPrefix("*.") ? name.hasSuffix(pattern.dropFirst()) : name == pattern
        }
    }

    static func isIPLiteral(_ name: String) -> Bool {
        if name.hasPrefix("[") && name.hasSuffix("]") {
            var address = in6_addr()
            return inet_pton(AF_INET6, String(name.dropFirst().dropLast()), &address) == 1
        }
        var address = in_addr()
        return inet_pton(AF_INET, name, &address) == 1
    }

    /// Whether `origin` is one of the given ones.
    public func allows(origin: String) -> Bool { origins.contains(origin.lowercased()) }

    /// Whether a request comes from a page of another origin than the API's (and not one given).
    func isForeign(_ request: HTTPRequest) -> Bool {
        if let origin = request.headers["Origin"] {
            if allows(origin: origin) { return false }
            let host = (request.headers["Host"] ?? "").lowercased()
            let lower = origin.lowercased()
            return !(lower == "http://" + host || lower == "https://" + host)
        }
        if let site = request.headers["Sec-Fetch-Site"]?.lowercased() {
            return site == "cross-site" || site == "same-site"
        }
        return false
    }
}

/// 421 for a foreign `Host`, 403 for a foreign origin that would change something.
struct OriginGuard: RouteGuard {
    let origins: RequestOrigins

    func admit(_ request: RoutedRequest) throws -> RoutedRequest {
        let head = request.request
        guard origins.accepts(host: head.headers["Host"]) else {
            throw OriginProblem.misdirected(host: head.headers["Host"] ?? "")
        }
        if origins.isForeign(head), !request.onlyReads || request.access.holdsConnection {
            throw OriginProblem.foreign(
                origin: head.headers["Origin"] ?? head.headers["Sec-Fetch-Site"] ?? "", holdsOpen: request.access.holdsConnection)
        }
        return request
    }
}

/// CORS for the origins given: preflights answered, answers carrying
/// `Access-Control-Allow-Origin` for them.
struct CrossOrigin: CrossOriginPolicy {
    let origins: RequestOrigins
    /// Request headers a page may send.
    static let allowedHeaders = "Authorization, Content-Type, Accept, X-USB-Lease, X-Request-Id, TE, Last-Event-ID"
    /// Answer headers a page may read.
    static let exposedHeaders =
        "X-Request-Id, X-USB-Transfer-Status, X-USB-Actual-Length, X-USB-Buffer-Source, X-USB-Transfers, X-USB-Transfer-Size, X-USB-Lease-Holder, X-USB-Iso-Failed-Packets, Retry-After, WWW-Authenticate"

    func preflight(_ request: HTTPRequest, methods: [String]) -> HTTPResponse {
        guard let origin = request.headers["Origin"], origins.allows(origin: origin) else {
            return OriginProblem.foreign(origin: request.headers["Origin"] ?? "", holdsOpen: false).response(for: request)
        }
        return HTTPResponse(
            status: 204,
            headers: [
                "Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Methods": methods.joined(separator: ", "),
                "Access-Control-Allow-Headers": Self.allowedHeaders, "Access-Control-Max-Age": "600",
            ])
    }

    func decorate(_ response: inout HTTPResponse, for request: HTTPRequest) {
        guard let origin = request.headers["Origin"], origins.allows(origin: origin) else { return }
        response.headers.set("Access-Control-Allow-Origin", origin)
        response.headers.add("Vary", "Origin")
        response.headers.set("Access-Control-Expose-Headers", Self.exposedHeaders)
    }
}

/// The answers of ``OriginGuard``.
enum OriginProblem: HTTPResponseError, Sendable {
    case misdirected(host: String)
    case foreign(origin: String, holdsOpen: Bool)

    var status: Int {
        switch self {
        case .misdirected: 421
        case .foreign: 403
        }
    }

    var code: String {
        switch self {
        case .misdirected: "misdirected-request"
        case .foreign: "foreign-origin"
        }
    }

    var title: String {
        switch self {
        case .misdirected: "Misdirected request"
        case .foreign: "Foreign origin"
        }
    }

    var detail: String {
        switch self {
        case .misdirected(let host):
            "This server does not answer to the name '\(LogText.printable(host, limit: 100))'; give it with --allowed-host to accept it."
        case .foreign(let origin, true):
            "A page from another origin ('\(LogText.printable(origin, limit: 100))') may not hold a connection open here (an event stream, a long poll); give it with --allowed-origin to let it use the API."
        case .foreign(let origin, false):
            "A page from another origin ('\(LogText.printable(origin, limit: 100))') may only read here; give it with --allowed-origin to let it use the API."
        }
    }
}
