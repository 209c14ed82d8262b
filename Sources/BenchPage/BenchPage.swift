import HTTPRouting
import HTTPServer

/// The bench page: `GET /` (the page) and `GET /page/{file}` (its script, style and icon), from
/// the files of `Sources/BenchPage/files`, embedded at build time (the Embed plugin): one binary,
/// nothing fetched at run time. The page talks to the public API like any other client.
///
/// Every answer forbids what the page never needs (``securityHeaders``): scripts and styles come
/// from this origin's files only (no inline script or style, no `eval`), fetches go to this
/// origin only, no page may frame it, and no referrer leaves it.
public enum BenchPage {
    /// Serves the page on `router`; `requirement` says who may fetch it (the files hold no data).
    public static func register(in router: inout Router, requires requirement: any RouteRequirement) {
        router.get("/", requires: requirement, immediately: { try answer($0, file: "index.html") })
        router.get("/page/{file}", requires: requirement, immediately: { try answer($0, file: $0.parameters["file"] ?? "") })
    }

    /// The Content-Security-Policy of every answer of the page's routes.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", contentSecurityPolicy),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        // Asked again each time (answered 304 while unchanged): a page left open across an
        // upgrade of the daemon must not run an old script against a new API.
        ("Cache-Control", "no-cache"),
    ]

    /// One embedded file, its answers made once: the whole file, and 304 for a client that has it.
    struct File: Sendable {
        let etag: String
        let whole: HTTPResponse
        let unchanged: HTTPResponse

        init(name: String, text: String) {
            let body = Array(text.utf8)
            etag = BenchPage.etag(of: body)
            var headers = HTTPHeaders()
            for (field, value) in securityHeaders { headers.set(field, value) }
            headers.set("ETag", etag)
            unchanged = HTTPResponse(status: 304, headers: headers)
            headers.set("Content-Type", contentType(of: name))
            whole = HTTPResponse(headers: headers, body: body)
        }
    }

    /// The embedded files by name.
    static let files: [String: File] = PageFiles.files.reduce(into: [:]) { files, entry in
        files[entry.key] = File(name: entry.key, text: entry.value)
    }

    /// The page's total size in bytes (its weight, as sent without compression).
    public static var weight: Int { files.values.reduce(0) { $0 + $1.whole.body.count } }

    static func answer(_ request: RoutedRequest, file name: String) throws -> HTTPResponse {
        try request.query.allow(only: [])
        guard let file = files[name] else { throw PageProblem.notFound(name) }
        let match = request.request.headers["If-None-Match"]
        let unchanged = match?.split(separator: ",").map({ $0.filter { $0 != " " } }).contains(file.etag) ?? false
        return unchanged ? file.unchanged : file.whole
    }

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        default: "text/plain; charset=utf-8"
        }
    }

    /// A strong validator: FNV-1a (64 bits) of the bytes.
    static func etag(of body: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\"" + String(hash, radix: 16) + "\""
    }
}

/// 404 `page-file-not-found`: no such file in the page.
public enum PageProblem: HTTPResponseError {
    case notFound(String)
    public var status: Int { 404 }
    public var code: String { "page-file-not-found" }
    public var title: String { "No such file in the bench page" }
    public var detail: String {
        switch self {
        case .notFound(let name): "The bench page has no file '\(name)'."
        }
    }
}
