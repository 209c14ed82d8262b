import Foundation
import HTTPServer
import Testing
import USB

@testable import USBService

/// Bearer tokens: the token file, the scope of every route, and the 401/403 answers.
@Suite struct AuthTests {
    static let file = """
        # who     scopes          token
        grafana   read            read-token-0123456789abcdef
        ci        read,transfer   transfer-token-fedcba9876543210
        ops       admin           sha256:\(TokenDigest(of: Array("admin-token-aaaaaaaaaaaaaaaa".utf8)).bytes.map { String(format: "%02x", $0) }.joined())
        """

    @Test func theTokenFileIsReadAsDigests() throws {
        let tokens = try TokenFile(text: Self.file)
        #expect(tokens.entries.map(\.name) == ["grafana", "ci", "ops"])
        #expect(tokens.entries.map(\.scope) == [.read, .transfer, .admin])
        #expect(tokens.entry(for: Array("admin-token-aaaaaaaaaaaaaaaa".utf8))?.name == "ops", "sha256: form")
        #expect(tokens.entry(for: Array("read-token-0123456789abcdeF".utf8)) == nil)
    }

    @Test(arguments: [
        ("a b", TokenFile.Failure.malformed(line: 1, reason: "expected <name> <scopes> <token>, found 2 fields")),
        ("a root 0123456789abcdef0", .malformed(line: 1, reason: "unknown scope 'root' (read, transfer, admin)")),
        ("a read short", .malformed(line: 1, reason: "a token must be at least 16 characters")),
        ("a read sha256:00", .malformed(line: 1, reason: "sha256: must be followed by 64 hex digits")),
        ("a/b read 0123456789abcdef0", .malformed(line: 1, reason: "a name is letters, digits and . _ - @")),
        ("a read 0123456789abcdef0\na read 0123456789abcdef1", .duplicateName(line: 2, "a")),
        ("a read 0123456789abcdef0\nb read 0123456789abcdef0", .duplicateToken(line: 2)),
        ("# nothing\n\n", .empty),
    ])
    func badTokenFiles(text: String, failure: TokenFile.Failure) {
        #expect(throws: failure) { try TokenFile(text: text) }
        #expect(!failure.description.contains("0123456789abcdef"), "errors never show a token")
    }

    @Test func everyRouteDeclaresWhoMayUseIt() {
        let table = API.router(catalog: FakeCatalog(list: [])).table
        for route in table {
            #expect(
                route.requirement is Access || route.requirement is DeviceRouteRequirement, "\(route.method) \(route.template)")
        }
        let open = table.filter { Access.of($0.requirement) == .open }.map(\.template)
        // The bench page's files hold no data: the page asks the API for it, with its token.
        #expect(Set(open) == ["/healthz", "/readyz", "/openapi.yaml", "/", "/page/{file}"])
        // Who one is: open, and told only with a token when the daemon has tokens.
        #expect(table.filter { Access.of($0.requirement) == .optional(.read) }.map(\.template) == ["/v1/whoami"])
        // A WebSocket ticket is a POST that changes nothing but the ticket book: a read token's
        // ticket opens only what the read token may (a console to read along).
        let moving = table.filter {
            ($0.method != "GET" && $0.template != "/v1/tickets") || $0.template.hasSuffix("/data")
                || $0.template.hasSuffix("/stream") || $0.template.hasSuffix("/iso")
        }
        #expect(moving.allSatisfy { Access.of($0.requirement).scope.map { $0 >= .transfer } ?? false },
                "every route that moves data or changes state needs more than read")
    }

    /// Every route that opens a device declares its preamble where it is registered: which
    /// lease it checks and where, and its place among the streams (``DeviceRoute``).
    @Test func everyDeviceRouteDeclaresItsChecks() {
        let table = API.router(catalog: FakeCatalog(list: [])).table
        var declared: [String: String] = [:]
        for route in table where route.template.hasPrefix("/v1/devices/{id}/") && !route.template.hasSuffix("/descriptors/raw") {
            guard let device = route.requirement as? DeviceRouteRequirement else {
                Issue.record("\(route.method) \(route.template) opens a device without a declared preamble")
                continue
            }
            declared["\(route.method) \(route.template)"] = device.slot == "none" ? device.lease : "\(device.lease), \(device.slot)"
        }
        let endpoint = "/v1/devices/{id}/endpoints/{endpoint}"
        #expect(declared["GET \(endpoint)/data"] == "endpoint")
        #expect(declared["POST \(endpoint)/stream"] == "endpoint, stream")
        #expect(declared["POST /v1/devices/{id}/reset"] == "device")
        #expect(declared["GET /v1/devices/{id}/claims"] == "none")
        #expect(declared["DELETE /v1/devices/{id}/interfaces/{interface}/claim"] == "interface")
        #expect(declared["GET /v1/devices/{id}/urb"]?.hasSuffix("watch") == true)
        #expect(declared["POST /v1/devices/{id}/consoles/{interface}/input"] == "interface")
        #expect(declared["GET /v1/devices/{id}/consoles/{interface}/output"] == "none")
        #expect(declared.count == 23, "\(declared.keys.sorted())")
    }

    func call(_ method: String, _ path: String, token: String?) async throws -> HTTPResponse {
        let api = API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard]), tokens: try TokenFile(text: Self.file))
        var headers = HTTPHeaders()
        if let token { headers.add("Authorization", "Bearer \(token)") }
        return await api.response(to: HTTPRequest(method: method, path: path, headers: headers))
    }

    func code(_ response: HTTPResponse) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["code"] as? String
    }

    @Test func missingWrongAndInsufficientTokens() async throws {
        let missing = try await call("GET", "/v1/devices", token: nil)
        #expect(missing.status == 401 && code(missing) == "unauthorized")
        #expect(missing.headers["WWW-Authenticate"] == "Bearer realm=\"usbhttpd\"")
        let basic = await API.router(catalog: FakeCatalog(list: []), tokens: try TokenFile(text: Self.file))
            .response(to: HTTPRequest(method: "GET", path: "/v1/devices", headers: ["Authorization": "Basic YTpi"]))
        #expect(basic.status == 401 && code(basic) == "unauthorized")
        let wrong = try await call("GET", "/v1/devices", token: "read-token-0123456789abcdeX")
        #expect(wrong.status == 401 && code(wrong) == "invalid-token")
        #expect(wrong.headers["WWW-Authenticate"]?.contains("error=\"invalid_token\"") == true)
        let reader = try await call("POST", "/v1/devices/4-1/interfaces/0/claim", token: "read-token-0123456789abcdef")
        #expect(reader.status == 403 && code(reader) == "insufficient-scope")
        #expect(reader.headers["WWW-Authenticate"]?.contains("scope=\"transfer\"") == true)
        let notAdmin = try await call("POST", "/v1/devices/4-1/reset", token: "transfer-token-fedcba9876543210")
        #expect(notAdmin.status == 403 && String(decoding: notAdmin.body, as: UTF8.self).contains("'ci'"))
    }

    @Test func theRightTokenGoesThrough() async throws {
        #expect(try await call("GET", "/v1/devices", token: "read-token-0123456789abcdef").status == 200)
        #expect(try await call("GET", "/v1/devices", token: "admin-token-aaaaaaaaaaaaaaaa").status == 200, "admin includes read")
        // Admitted, then the fake has no session for it: the route's own answer, not an auth one.
        let claim = try await call("POST", "/v1/devices/4-1/interfaces/0/claim", token: "transfer-token-fedcba9876543210")
        #expect(claim.status != 401 && claim.status != 403)
        for open in ["/healthz", "/readyz", "/openapi.yaml"] {
            #expect(try await call("GET", open, token: nil).status == 200, "\(open) needs no token")
        }
    }

    /// With --rate-limit, each token may make that many requests a second, in a burst too; the
    /// next gets 429 rate-limited with Retry-After, and other tokens are not held back.
    @Test func aTokenPastItsRateIsToldWhenToComeBack() async throws {
        let api = API.router(
            catalog: FakeCatalog(list: [FakeCatalog.keyboard]), tokens: try TokenFile(text: Self.file), rateLimit: 3)
        func get(_ token: String) async -> HTTPResponse {
            var headers = HTTPHeaders()
            headers.add("Authorization", "Bearer \(token)")
            return await api.response(to: HTTPRequest(method: "GET", path: "/v1/devices", headers: headers))
        }
        for _ in 0..<3 { #expect(await get("read-token-0123456789abcdef").status == 200) }
        let refused = await get("read-token-0123456789abcdef")
        #expect(refused.status == 429 && code(refused) == "rate-limited")
        #expect(refused.headers["Retry-After"] == "1")
        #expect(refused.headers["Content-Type"] == "application/problem+json")
        #expect(await get("transfer-token-fedcba9876543210").status == 200, "another token has its own rate")
        // /healthz needs no token and is never limited.
        #expect(await api.response(to: HTTPRequest(method: "GET", path: "/healthz")).status == 200)
    }

    @Test func theBucketRefillsAtTheRate() {
        let limiter = RateLimiter(perSecond: 2)
        let start = ContinuousClock.now
        #expect(limiter.admit("a", now: start) == nil)
        #expect(limiter.admit("a", now: start) == nil)
        #expect(limiter.admit("a", now: start) == .milliseconds(500))
        #expect(limiter.admit("a", now: start + .milliseconds(500)) == nil, "one more after half a second")
        #expect(limiter.admit("a", now: start + .milliseconds(500)) != nil)
        #expect(limiter.admit("a", now: start + .seconds(10)) == nil, "full again, but never above the rate")
        #expect(limiter.admit("a", now: start + .seconds(10)) == nil)
        #expect(limiter.admit("a", now: start + .seconds(10)) != nil)
    }

    @Test func digestsCompareEveryByte() {
        let a = TokenDigest(of: Array("x".utf8))
        #expect(a.matches(TokenDigest(of: Array("x".utf8))))
        #expect(!a.matches(TokenDigest(of: Array("y".utf8))))
        #expect(TokenDigest(hex: String(repeating: "g", count: 64)) == nil)
    }
}

/// The bound on open streams.
@Suite struct StreamSlotTests {
    @Test func perDeviceAndTotalBounds() throws {
        let slots = StreamSlots(perDevice: 2, total: 3)
        let a1 = try slots.acquire(device: "1-1")
        let a2 = try slots.acquire(device: "1-1")
        #expect(throws: TooManyStreams(device: "1-1", limit: 2, bound: .device)) { try slots.acquire(device: "1-1") }
        let b1 = try slots.acquire(device: "2-1")
        #expect(throws: TooManyStreams(device: "3-1", limit: 3, bound: .total)) { try slots.acquire(device: "3-1") }
        a1.release()
        a1.release()  // once only
        #expect(slots.count == 2)
        _ = try slots.acquire(device: "3-1")  // released when dropped
        #expect(slots.count == 2)
        _ = (a2, b1)
        let problem = TooManyStreams(device: "1-1", limit: 2, bound: .device)
        #expect(problem.status == 503 && problem.headers["Retry-After"] == "1")
    }

    /// One client cannot take every slot of a device: past its own bound, others still get theirs.
    @Test func perClientBounds() throws {
        let slots = StreamSlots(perDevice: 8, perClientOnDevice: 2, perClient: 3, total: 64)
        let first = try slots.acquire(device: "1-1", client: "address 10.0.0.1")
        let second = try slots.acquire(device: "1-1", client: "address 10.0.0.1")
        #expect(throws: TooManyStreams(device: "1-1", limit: 2, bound: .clientOnDevice)) {
            try slots.acquire(device: "1-1", client: "address 10.0.0.1")
        }
        let other = try slots.acquire(device: "1-1", client: "token ci")
        let elsewhere = try slots.acquire(device: "2-1", client: "address 10.0.0.1")
        #expect(throws: TooManyStreams(device: "3-1", limit: 3, bound: .client)) {
            try slots.acquire(device: "3-1", client: "address 10.0.0.1")
        }
        first.release()
        let again = try slots.acquire(device: "1-1", client: "address 10.0.0.1")
        #expect(slots.count == 4)
        _ = (second, other, elsewhere, again)
    }
}
