import BenchPage
import Foundation
import HTTPServer
import Testing

@testable import USBService

/// The bench page's routes (`/`, `/page/{file}`): its files as built in, with headers that
/// forbid what the page never needs; and the page's files themselves, read for what would
/// make it unsafe (inline script or style, HTML made from strings, eval).
@Suite struct BenchPageTests {
    static let api = API.router(catalog: FakeCatalog(list: []), tokens: try? TokenFile(text: AuthTests.file))

    func get(_ path: String, query: [(String, String)] = [], headers: HTTPHeaders = [:], method: String = "GET") async
        -> HTTPResponse
    {
        await Self.api.response(
            to: HTTPRequest(method: method, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: headers))
    }

    static let files: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/BenchPage/files")

    static func source(_ name: String) throws -> String {
        try String(contentsOf: files.appendingPathComponent(name), encoding: .utf8)
    }

    @Test func thePageIsServedWithoutATokenAndWithItsGuards() async throws {
        let page = await get("/")
        #expect(page.status == 200)
        #expect(page.headers["Content-Type"] == "text/html; charset=utf-8")
        let policy = try #require(page.headers["Content-Security-Policy"])
        for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"] {
            #expect(policy.contains(directive), "\(directive)")
        }
        #expect(!policy.contains("unsafe"))
        #expect(page.headers["X-Frame-Options"] == "DENY")
        #expect(page.headers["X-Content-Type-Options"] == "nosniff")
        #expect(page.headers["Referrer-Policy"] == "no-referrer")
        #expect(String(decoding: page.body, as: UTF8.self) == (try Self.source("index.html")), "the file as built in")

        let script = await get("/page/app.js")
        #expect(script.status == 200 && script.headers["Content-Type"] == "text/javascript; charset=utf-8")
        #expect(script.headers["Content-Security-Policy"] == policy)
        #expect(await get("/page/style.css").headers["Content-Type"] == "text/css; charset=utf-8")
        #expect(await get("/page/icon.svg").headers["Content-Type"] == "image/svg+xml")
        #expect(await get("/", method: "HEAD").status == 200)
    }

    @Test func anUnchangedFileIs304AndAnUnknownOne404() async throws {
        let first = await get("/page/app.js")
        let etag = try #require(first.headers["ETag"])
        #expect(etag.hasPrefix("\"") && etag.hasSuffix("\""))
        let again = await get("/page/app.js", headers: ["If-None-Match": "\"other\", \(etag)"])
        #expect(again.status == 304 && again.body.isEmpty)
        #expect(await get("/page/app.js", headers: ["If-None-Match": "\"other\""]).status == 200)

        for name in ["nope.js", "..", "%2e%2e", "index.html.bak", "app.js%00"] {
            let missing = await get("/page/\(name)")
            #expect(missing.status == 404, "\(name)")
            #expect(missing.headers["Content-Type"] == "application/problem+json")
        }
        #expect(await get("/page/app.js", query: [("x", "1")]).status == 400)
        #expect(await get("/", method: "POST").status == 405)
        #expect(await get("/page").status == 404)
    }

    /// Every file the page loads is built in, and the page loads nothing from elsewhere.
    @Test func everyFileThePageNamesIsBuiltIn() throws {
        let html = try Self.source("index.html")
        var named = html.matches(of: /(?:src|href)="\/page\/([^"]+)"/).map { String($0.1) }
        for script in try FileManager.default.contentsOfDirectory(atPath: Self.files.path) where script.hasSuffix(".js") {
            named += try Self.source(script).matches(of: /from "\.\/([a-z]+\.js)"/).map { String($0.1) }
        }
        #expect(named.contains("app.js") && named.contains("devices.js"))
        for name in named {
            #expect(BenchPage.weight > 0)
            #expect(FileManager.default.fileExists(atPath: Self.files.appendingPathComponent(name).path), "\(name)")
        }
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"))
    }

    /// What the Content-Security-Policy would refuse, and what would make a device's strings
    /// HTML, is not in the page's files at all.
    @Test func thePageHasNoInlineScriptOrStyleAndNeverMakesHTMLFromStrings() throws {
        let html = try Self.source("index.html")
        #expect(html.matches(of: /<script(?![^>]*\bsrc=)[^>]*>/).isEmpty, "no inline script")
        #expect(!html.contains("<style") && !html.contains(" style="), "no inline style")
        #expect(html.matches(of: /\son[a-z]+=/).isEmpty, "no inline event handlers")
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.files.path) where name.hasSuffix(".js") {
            let script = try Self.source(name)
            for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "localStorage", "document.cookie", "?token="] {
                #expect(!script.contains(forbidden), "\(name) uses \(forbidden)")
            }
        }
    }
}
