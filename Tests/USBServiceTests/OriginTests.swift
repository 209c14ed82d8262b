import Foundation
import HTTPRouting
import HTTPServer
import Testing
import USB

@testable import USBService

/// The defences against web pages (DNS rebinding, cross-site requests), HEAD on routes that
/// move data, and guessing tokens: each answered from the head, before any handler runs.
@Suite struct OriginTests {
    static let api = API.router(
        catalog: FakeCatalog(list: [FakeCatalog.keyboard]),
        origins: RequestOrigins(hosts: ["bench-7.lab", "*.benches.example"], origins: ["https://dash.example"]))

    func send(
        _ method: String, _ path: String, _ headers: [(String, String)], query: [(name: String, value: String)] = [],
        api: Router = OriginTests.api
    ) async -> HTTPResponse {
        var fields = HTTPHeaders()
        for (name, value) in headers { fields.add(name, value) }
        return await api.response(to: HTTPRequest(method: method, path: path, query: query, headers: fields))
    }

    func code(_ response: HTTPResponse) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["code"] as? String
    }

    @Test(arguments: [
        "localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "bench-7.lab:8080",
        "BENCH-7.LAB", "a.benches.example", "x.y.benches.example:80", "foo.localhost",
    ])
    func namesThatCannotBeRebound(host: String) async {
        let answer = await send("GET", "/v1/devices", [("Host", host)])
        #expect(answer.status == 200, "\(host)")
    }

    /// A page on attacker.example that rebinds its name to this machine sends its own name.
    @Test(arguments: ["attacker.example", "attacker.example:8080", "benches.example", "bench-7.lab.attacker.example", "", "[::1"])
    func aReboundNameIsMisdirected(host: String) async {
        for (method, path) in [("GET", "/v1/devices"), ("POST", "/v1/devices/4-1/interfaces/0/claim"), ("GET", "/metrics")] {
            let answer = await send(method, path, [("Host", host)])
            #expect(answer.status == 421 && code(answer) == "misdirected-request", "\(host) \(method) \(path)")
            #expect(answer.headers["Content-Type"] == "application/problem+json")
        }
    }

    /// A form or a no-preflight fetch from another site may not change anything; it may read
    /// (the browser keeps the answer from the page).
    @Test func aForeignPageMayOnlyRead() async {
        let foreign = [("Host", "localhost:8080"), ("Origin", "https://attacker.example")]
        let claim = await send("POST", "/v1/devices/4-1/interfaces/0/claim", foreign)
        #expect(claim.status == 403 && code(claim) == "foreign-origin")
        #expect(claim.headers["Access-Control-Allow-Origin"] == nil)
        let read = await send("GET", "/v1/devices", foreign)
        #expect(read.status == 200 && read.headers["Access-Control-Allow-Origin"] == nil)
        // A GET that moves data is no read.
        let data = await send("GET", "/v1/devices/4-1/endpoints/0x81/data", foreign)
        #expect(data.status == 403 && code(data) == "foreign-origin")
        // Without Origin (a GET from <img>, a navigation), Sec-Fetch-Site tells.
        let image = await send("GET", "/v1/devices/4-1/endpoints/0x81/stream", [("Sec-Fetch-Site", "cross-site")])
        #expect(image.status == 403 && code(image) == "foreign-origin")
        // A wait that claims on the device that comes back is a change: only as a POST, which
        // a foreign page may not send; as a GET (an <img>) `claim` is no parameter at all.
        let waitQuery = [(name: "id", value: "4-1"), (name: "claim", value: "0")]
        let claimingWait = await send("POST", "/v1/wait", [("Sec-Fetch-Site", "cross-site")], query: waitQuery)
        #expect(claimingWait.status == 403 && code(claimingWait) == "foreign-origin")
        // As a GET (an <img>) the wait is a long poll, which no foreign page may hold at all
        // (issue 24, class 4): refused from the head, before its parameters are read.
        let imageWait = await send("GET", "/v1/wait", [("Sec-Fetch-Site", "cross-site")], query: waitQuery)
        #expect(imageWait.status == 403 && code(imageWait) == "foreign-origin")
        let sameSite = await send("POST", "/v1/devices/4-1/reset", [("Sec-Fetch-Site", "same-site")])
        #expect(sameSite.status == 403)
        // The API's own origin, and tools that send none, are not foreign.
        let own = await send("POST", "/v1/devices/4-1/interfaces/0/claim", [("Host", "localhost:8080"), ("Origin", "http://localhost:8080")])
        #expect(own.status != 403 && own.status != 421)
        let curl = await send("POST", "/v1/devices/4-1/interfaces/0/claim", [("Host", "localhost:8080")])
        #expect(curl.status != 403 && curl.status != 421)
    }

    /// Issue 24, class 4: a page from another site may not hold connections open (each would
    /// take one of the address's and the daemon's connections for as long as the page stays
    /// open): the event stream and the long poll are refused from the head, in every form a
    /// browser sends them (EventSource and fetch with Origin, <img> and navigations with
    /// Sec-Fetch-Site); the daemon's own origin, an allowed one and tools are served.
    @Test func aForeignPageHoldsNothingOpen() async {
        let wait = [(name: "id", value: "4-1"), (name: "timeout_ms", value: "0"), (name: "for", value: "absent")]
        for headers in [
            [("Host", "localhost:8080"), ("Origin", "https://attacker.example")],
            [("Host", "localhost:8080"), ("Origin", "null")],
            [("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")],
        ] {
            for (path, query) in [("/v1/events", [(name: String, value: String)]()), ("/v1/wait", wait)] {
                let answer = await send("GET", path, headers, query: query)
                #expect(answer.status == 403 && code(answer) == "foreign-origin", "\(path) \(headers)")
                let detail = (try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])?["detail"] as? String
                #expect(detail?.contains("may not hold a connection open") == true, "\(detail ?? "")")
            }
        }
        // Not foreign: a short wait answers (the device is there, so waiting for its absence
        // times out at once), and the event stream starts.
        for headers in [
            [("Host", "localhost:8080"), ("Origin", "http://localhost:8080")], [("Host", "localhost:8080"), ("Origin", "https://dash.example")],
            [("Sec-Fetch-Site", "same-origin")], [("Host", "localhost:8080")],
        ] {
            let answer = await send("GET", "/v1/wait", headers, query: wait)
            #expect(answer.status != 403 && answer.status != 421, "\(headers): \(answer.status)")
        }
    }

    @Test func anAllowedOriginGetsCORS() async {
        let preflight = await send(
            "OPTIONS", "/v1/devices/4-1/interfaces/0/claim",
            [("Origin", "https://dash.example"), ("Access-Control-Request-Method", "POST")])
        #expect(preflight.status == 204)
        #expect(preflight.headers["Access-Control-Allow-Origin"] == "https://dash.example")
        #expect(preflight.headers["Access-Control-Allow-Methods"]?.contains("POST") == true)
        #expect(preflight.headers["Access-Control-Allow-Headers"]?.contains("Authorization") == true)
        let claim = await send("POST", "/v1/devices/4-1/interfaces/0/claim", [("Origin", "https://DASH.example")])
        #expect(claim.status != 403)
        #expect(claim.headers["Access-Control-Allow-Origin"] == "https://DASH.example")
        #expect(claim.headers["Access-Control-Expose-Headers"]?.contains("X-USB-Transfer-Status") == true)
        let listing = await send("GET", "/v1/devices", [("Origin", "https://dash.example")])
        #expect(listing.headers["Access-Control-Allow-Origin"] == "https://dash.example")
        // Problems carry it too, so the page can read why.
        let missing = await send("GET", "/v1/nothing", [("Origin", "https://dash.example")])
        #expect(missing.status == 404 && missing.headers["Access-Control-Allow-Origin"] == "https://dash.example")
    }

    @Test func aForeignPreflightIsRefused() async {
        let preflight = await send(
            "OPTIONS", "/v1/devices/4-1/interfaces/0/claim",
            [("Origin", "https://attacker.example"), ("Access-Control-Request-Method", "POST")])
        #expect(preflight.status == 403 && code(preflight) == "foreign-origin")
        #expect(preflight.headers["Access-Control-Allow-Origin"] == nil)
        // Without allowed origins there is no CORS at all: OPTIONS is a method like any other.
        let plain = API.router(catalog: FakeCatalog(list: []))
        let answer = await send("OPTIONS", "/v1/devices", [("Origin", "https://dash.example")], api: plain)
        #expect(answer.status == 405 && answer.headers["Access-Control-Allow-Origin"] == nil)
    }

    /// HEAD must have no effect: on a GET that moves data it is refused before the route runs.
    @Test func headOnlyWhereGetOnlyReads() async {
        for path in ["/v1/devices/4-1/endpoints/0x81/data", "/v1/devices/4-1/endpoints/0x81/stream", "/v1/devices/4-1/endpoints/0x81/iso"] {
            let answer = await send("HEAD", path, [])
            #expect(answer.status == 405 && code(answer) == "method-not-allowed", "\(path)")
            #expect(answer.headers["Allow"] == "GET")
        }
        #expect(await send("HEAD", "/v1/devices", []).status == 200)
        #expect(await send("HEAD", "/healthz", []).status == 200)
    }

    /// Tokens cannot be guessed at speed: ten failures from an address, then 429 for its wrong
    /// tokens until the bucket refills; the right token from the same address (a NAT shared
    /// with whoever floods) still goes through, and other addresses are not held back.
    @Test func failedTokensAreLimitedPerAddress() async throws {
        let api = API.router(catalog: FakeCatalog(list: []), tokens: try TokenFile(text: AuthTests.file))
        func get(_ token: String, from address: String) async -> HTTPResponse {
            var request = HTTPRequest(method: "GET", path: "/v1/devices", headers: ["Authorization": "Bearer \(token)"])
            request.remoteAddress = address
            return await api.response(to: request)
        }
        for attempt in 0..<Authenticator.failureBurst {
            #expect(await get("guess-\(attempt)-0000000000000000", from: "10.0.0.9").status == 401)
        }
        let limited = await get("guess-next-0000000000000000", from: "10.0.0.9")
        #expect(limited.status == 429 && code(limited) == "rate-limited" && limited.headers["Retry-After"] != nil)
        #expect(await get("read-token-0123456789abcdef", from: "10.0.0.9").status == 200, "the right token is never locked out")
        #expect(await get("guess-after-000000000000000", from: "10.0.0.9").status == 429, "and the guesser still is")
        #expect(await get("read-token-0123456789abcdef", from: "10.0.0.10").status == 200)
    }

    /// Without tokens, --rate-limit holds back each address.
    @Test func theRateLimitHoldsAddressesWithoutTokens() async {
        let api = API.router(catalog: FakeCatalog(list: []), rateLimit: 2)
        func get(from address: String) async -> Int {
            var request = HTTPRequest(method: "GET", path: "/v1/devices")
            request.remoteAddress = address
            return await api.response(to: request).status
        }
        #expect(await get(from: "10.0.0.1") == 200)
        #expect(await get(from: "10.0.0.1") == 200)
        #expect(await get(from: "10.0.0.1") == 429)
        #expect(await get(from: "10.0.0.2") == 200)
    }

    /// Keys from many addresses cannot grow the limiter without bound.
    @Test func theLimiterForgetsFullBuckets() {
        let limiter = RateLimiter(perSecond: 1, burst: 2)
        let start = ContinuousClock.now
        for n in 0..<(RateLimiter.keptBuckets * 2) { _ = limiter.admit("address \(n)", now: start) }
        #expect(limiter.count > RateLimiter.keptBuckets, "none is full yet")
        _ = limiter.admit("late", now: start + .seconds(5))
        #expect(limiter.count <= 2, "the full ones are gone")
        for n in 0..<(RateLimiter.maxBuckets + 1) { _ = limiter.admit("flood \(n)", now: start + .seconds(5)) }
        #expect(limiter.count <= RateLimiter.maxBuckets, "a flood of new keys starts it over rather than grow it")
    }
}
