import HTTPRouting
import HTTPServer
import Logging
import Synchronization
import Testing
import TestSupport
import EventLoop

/// The libmicrohttpd server itself, on a loopback port.
@Suite struct LiveServerTests {
    /// Requests whose task saw its cancellation, by the `tag` in their query.
    static let cancelled = Mutex<Set<String>>([])
    /// Requests to /slow and /until-cancelled that reached their handler, by the `tag` in their query.
    static let started = Mutex<Set<String>>([])

    /// Waits (up to 10 s: a loaded machine can take a while) until the request tagged `tag` runs.
    static func waitUntilStarted(_ tag: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !started.withLock({ $0.contains(tag) }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The executor that requests to /on-thread prefer.
    static let preferred = try! EventLoop(name: "test-preferred", logger: Logger(label: "test"))

    struct Echo: HTTPResponder {
        func handler(for request: HTTPRequest) -> HTTPHandler {
            let path = request.path
            if path.hasPrefix("/denied") {
                // Refused from the head, as an authenticator does.
                return .refuse(HTTPResponse(status: 401, body: Array("no".utf8)))
            }
            var handler = HTTPHandler(
                streamsBody: path.hasPrefix("/refuse"), executor: path == "/on-thread" ? LiveServerTests.preferred : nil,
                respond: { try await respond(to: $0) })
            if path.hasPrefix("/now") {
                // Answered at once (no task), later, or with a thrown problem, as the query says.
                handler.respondNow = { request in
                    switch request.query.first?.value {
                    case "later": return nil
                    case "fail": throw HTTPProblem.shuttingDown
                    default: return HTTPResponse(status: 200, body: Array("now".utf8))
                    }
                }
            }
            return handler
        }

        func respond(to request: HTTPRequest) async throws -> HTTPResponse {
            switch request.path {
            case "/refuse-at-once":
                // A streamed-body route that answers before reading anything (a bad parameter).
                return HTTPResponse(status: 400, body: Array("refused".utf8))
            case "/refuse-soon":
                // One that answers while the body streams in, without reading it.
                try await Task.sleep(for: .microseconds(Int.random(in: 0..<3000)))
                return HTTPResponse(status: 400, body: Array("refused".utf8))
            case "/refuse-after-a-piece":
                // One that reads a little, lets the client be held back, then answers.
                _ = try await request.bodyStream?.read()
                try await Task.sleep(for: .milliseconds(100))
                return HTTPResponse(status: 400, body: Array("refused".utf8))
            case "/slow":
                let tag = request.query.first { $0.name == "tag" }?.value ?? ""
                _ = LiveServerTests.started.withLock { $0.insert(tag) }
                try await Task.sleep(for: .seconds(30))
                return HTTPResponse(status: 200)
            case "/until-cancelled":
                let tag = request.query.first { $0.name == "tag" }?.value ?? ""
                _ = LiveServerTests.started.withLock { $0.insert(tag) }
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    let tag = request.query.first { $0.name == "tag" }?.value ?? ""
                    _ = LiveServerTests.cancelled.withLock { $0.insert(tag) }
                    throw error
                }
                return HTTPResponse(status: 200)
            case "/on-thread", "/elsewhere":
                return HTTPResponse(status: 200, body: Array("\(LiveServerTests.preferred.inEventLoop)".utf8))
            case "/query":
                return HTTPResponse(
                    status: 200, body: Array(request.query.map { "\($0.name)=\($0.value)" }.joined(separator: "&").utf8))
            default:
                var headers = HTTPHeaders()
                headers.add("X-Method", request.method)
                headers.add("X-Path", request.path)
                return HTTPResponse(status: 200, headers: headers, body: request.body)
            }
        }
    }

    func withServer(
        maxBodySize: Int = 1024, grace: Double = 5, configure: (inout HTTPServerConfiguration) -> Void = { _ in },
        _ body: (HTTPServer, TestHTTPClient) async throws -> Void
    ) async throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.maxBodySize = maxBodySize
        configuration.shutdownGrace = grace
        configure(&configuration)
        let server = HTTPServer(configuration: configuration, responder: Echo(), logger: Logger(label: "test"))
        try server.start()
        let client = TestHTTPClient(port: Int(server.port))
        do {
            try await body(server, client)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func echoesBodiesAndSetsRequestIDs() async throws {
        try await withServer { _, client in
            let result = try await client.request("POST", "/echo", body: Array("hello".utf8))
            #expect(result.status == 200)
            #expect(result.text == "hello")
            #expect(result.header("X-Method") == "POST")
            #expect(result.header("X-Request-Id")?.count == 16)
        }
    }

    @Test func aRequestRunsOnTheExecutorItsResponderPicks() async throws {
        try await withServer { _, client in
            let preferred = try await client.get("/on-thread")
            let elsewhere = try await client.get("/elsewhere")
            #expect(preferred.text == "true")
            #expect(elsewhere.text == "false")
        }
    }

    /// A handler that can answer at once is answered inside the callback; one that cannot now
    /// runs as a task; a thrown problem is its answer either way.
    @Test func anAnswerReadyNowNeedsNoTask() async throws {
        try await withServer { _, client in
            let now = try await client.get("/now?when=now")
            #expect(now.status == 200 && now.text == "now")
            let later = try await client.get("/now?when=later")
            #expect(later.status == 200 && later.header("X-Method") == "GET" && later.text.isEmpty, "the task's answer")
            let failed = try await client.get("/now?when=fail")
            #expect(failed.status == 503 && failed.header("Content-Type") == "application/problem+json")
            #expect(failed.header("X-Request-Id")?.count == 16)
        }
    }

    @Test func decodesQueryArguments() async throws {
        try await withServer { _, client in
            let result = try await client.get("/query?a=1&b=x%20y&a=2")
            #expect(result.text == "a=1&b=x y&a=2")
        }
    }

    /// %00 stays escaped, in the path and in query arguments: decoded, the NUL would end the
    /// string libmicrohttpd hands on, and "/devices/1/reset%00x" would reach the router as
    /// "/devices/1/reset". Every other %XX is decoded as before.
    @Test func anEscapedNULIsNeverDecoded() async throws {
        try await withServer { server, _ in
            let path = try RawConnection(port: Int(server.port))
            try path.send("GET /echo/a%2Fb%41%00tail HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            let echoed = try #require(try await path.chunkedResponse(within: 10))
            #expect(echoed.headers["x-path"] == "/echo/a/bA%00tail")
            let query = try RawConnection(port: Int(server.port))
            try query.send("GET /query?a=x%00y&b=%41 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            let answer = try #require(try await query.chunkedResponse(within: 10))
            #expect(String(decoding: answer.body, as: UTF8.self) == "a=x%00y&b=A")
        }
    }

    /// A request refused from its head is answered before its body is sent, and the connection
    /// closed after the answer: the server reads none of a body it would throw away.
    @Test func aRefusalFromTheHeadReadsNoBody() async throws {
        try await withServer(maxBodySize: 1 << 30) { server, _ in
            let connection = try RawConnection(port: Int(server.port))
            try connection.send(
                "POST /denied-upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n")
            let answer = try await connection.response(within: 10)
            #expect(answer?.status == 401, "answered with nothing of the body sent")
            #expect(await connection.closedByServer(within: 10))
            // Without a body, the connection stays usable.
            let plain = try RawConnection(port: Int(server.port))
            try plain.send("GET /denied HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(try await plain.response(within: 10)?.status == 401)
            try plain.send("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(try await plain.response(within: 10)?.status == 200)
        }
    }

    @Test func refusesBodiesOverTheLimitWith413() async throws {
        try await withServer(maxBodySize: 16) { _, client in
            let result = try await client.request("POST", "/echo", body: [UInt8](repeating: 65, count: 17))
            #expect(problemMismatch(result, status: 413, code: "body-too-large") == nil)
            let fits = try await client.request("POST", "/echo", body: [UInt8](repeating: 65, count: 16))
            #expect(fits.status == 200 && fits.body.count == 16)
        }
    }

    @Test func servesManyRequestsAtOnce() async throws {
        try await withServer { _, client in
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<50 {
                    group.addTask { try await client.request("POST", "/echo", body: Array("\(i)".utf8)).text }
                }
                var seen: Set<String> = []
                for try await text in group { seen.insert(text) }
                #expect(seen == Set((0..<50).map(String.init)))
            }
        }
    }

    /// A request still running at shutdown is answered 503 and its connection resumed, so
    /// that MHD_stop_daemon never meets a suspended connection.
    @Test func shutdownAnswersRequestsStillRunning() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.shutdownGrace = 0.2
        let server = HTTPServer(configuration: configuration, responder: Echo(), logger: Logger(label: "test"))
        try server.start()
        let client = TestHTTPClient(port: Int(server.port))
        async let slow = client.request("GET", "/slow?tag=shutdown", timeout: 20)
        try await Self.waitUntilStarted("shutdown")
        let started = ContinuousClock.now
        await server.shutdown()
        #expect(ContinuousClock.now - started < .seconds(3))
        let result = try await slow
        #expect(problemMismatch(result, status: 503, code: "shutting-down") == nil)
        #expect(result.header("Retry-After") == "5")
    }

    /// A client that hangs up while its request is processed gets its task cancelled (which
    /// is what cancels its URBs), although libmicrohttpd does not watch suspended connections.
    @Test func aClientThatHangsUpHasItsRequestCancelled() async throws {
        try await withServer { server, client in
            let connection = try RawConnection(port: Int(server.port))
            try connection.send("GET /until-cancelled?tag=hangup HTTP/1.1\r\nHost: test\r\n\r\n")
            try await Self.waitUntilStarted("hangup")
            connection.close()
            let deadline = ContinuousClock.now + .seconds(10)
            while !Self.cancelled.withLock({ $0.contains("hangup") }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(Self.cancelled.withLock { $0.contains("hangup") })
            // The server goes on serving.
            #expect(try await client.request("POST", "/echo", body: Array("after".utf8)).text == "after")
        }
    }

    /// A streamed-body route that answers before the body is in gets its answer out once the
    /// rest is read and dropped, and the keep-alive connection serves the next request: the
    /// answer never resumes a connection that is not suspended (a stale resume swallowed the
    /// next request's suspend, and that request was never answered).
    @Test(arguments: ["/refuse-at-once", "/refuse-soon", "/refuse-after-a-piece"])
    func earlyAnswersToUploadsLeaveTheConnectionUsable(path: String) async throws {
        try await withServer { server, _ in
            let connection = try RawConnection(port: Int(server.port))
            let body = String(repeating: "x", count: 3 << 20)
            for round in 0..<(path == "/refuse-after-a-piece" ? 5 : 100) {
                try await connection.sendOffThePool(
                    "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
                let refused = try await connection.response(within: 10)
                #expect(refused?.status == 400 && refused?.text == "refused", "round \(round)")
                try await connection.sendOffThePool("GET /query?round=\(round) HTTP/1.1\r\nHost: test\r\n\r\n")
                let next = try await connection.response(within: 10)
                #expect(next?.status == 200 && next?.text == "round=\(round)", "round \(round)")
                if next?.status != 200 { break }
            }
        }
    }

    @Test func badListenAddressesThrow() {
        var configuration = HTTPServerConfiguration()
        configuration.host = "not an address"
        let server = HTTPServer(configuration: configuration, responder: Echo(), logger: Logger(label: "test"))
        #expect(throws: HTTPServerError.self) { try server.start() }
    }
}
