import HTTPRouting
import HTTPServer
import Testing
import Threads

@Suite struct PathTemplateTests {
    @Test func matchesLiteralsAndParameters() {
        let template = PathTemplate("/v1/devices/{id}/descriptors/raw")
        #expect(template.match("/v1/devices/1-2.3/descriptors/raw") == ["id": "1-2.3"])
        #expect(template.match("/v1/devices/1-2.3/descriptors/raw/") == ["id": "1-2.3"])
        #expect(template.match("/v1/devices//descriptors/raw") == nil)
        #expect(template.match("/v1/devices/1-2/descriptors") == nil)
        #expect(template.match("/v1/devices/1-2/descriptors/raw/x") == nil)
        #expect(PathTemplate("/v1/devices").match("/v1/devices") == [:])
        #expect(PathTemplate("/v1/devices").match("/v1/Devices") == nil)
    }
}

@Suite struct RouterTests {
    let router: Router = {
        var router = Router()
        router.get("/things") { _ in HTTPResponse(status: 200, body: Array("list".utf8)) }
        router.get("/things/{id}") { request in
            HTTPResponse(status: 200, body: Array((request.parameters["id"] ?? "").utf8))
        }
        router.delete("/things/{id}") { _ in HTTPResponse(status: 204) }
        router.get("/fail") { _ in throw HTTPProblem(status: 409, code: "held", title: "Held", detail: "by x") }
        router.get("/crash") { _ in throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "secret")) }
        router.get("/cancelled") { _ in throw CancellationError() }
        return router
    }()

    @Test func dispatchesByMethodAndTemplate() async {
        let one = await router.response(to: HTTPRequest(method: "GET", path: "/things/42"))
        #expect(one.status == 200 && one.body == Array("42".utf8))
        let gone = await router.response(to: HTTPRequest(method: "DELETE", path: "/things/42"))
        #expect(gone.status == 204)
    }

    @Test func theRouteIsResolvedOnceFromTheHead() async {
        var router = self.router
        router.post("/uploads/{id}", streamsBody: true) { request in
            HTTPResponse(status: 201, body: Array((request.parameters["id"] ?? "").utf8))
        }
        let upload = router.handler(for: HTTPRequest(method: "POST", path: "/uploads/9"))
        #expect(upload.streamsBody)
        #expect(upload.executor == nil, "the server's loop")
        let answer = await upload.response(to: HTTPRequest(method: "POST", path: "/uploads/9"))
        #expect(answer.status == 201 && answer.body == Array("9".utf8))
        #expect(!router.handler(for: HTTPRequest(method: "GET", path: "/things/7")).streamsBody)
        #expect(!router.handler(for: HTTPRequest(method: "HEAD", path: "/things/7/")).streamsBody)
        let missing = await router.handler(for: HTTPRequest(method: "GET", path: "/nothing")).response(to: HTTPRequest(method: "GET", path: "/nothing"))
        #expect(missing.status == 404)
        let wrong = await router.handler(for: HTTPRequest(method: "PATCH", path: "/uploads/9")).response(to: HTTPRequest(method: "PATCH", path: "/uploads/9"))
        #expect(wrong.status == 405)
    }

    @Test func headIsServedByGet() async {
        let head = await router.response(to: HTTPRequest(method: "HEAD", path: "/things"))
        #expect(head.status == 200)
    }

    @Test func unknownPathIs404Problem() async throws {
        let response = await router.response(to: HTTPRequest(method: "GET", path: "/nothing"))
        #expect(response.status == 404)
        #expect(response.headers["Content-Type"] == "application/problem+json")
        let problem = try JSON.decode(ProblemDocument.self, from: response.body)
        #expect(problem.code == "not-found" && problem.status == 404 && problem.instance == "/nothing")
        #expect(problem.type == "urn:usbhttpd:problem:not-found")
    }

    @Test func wrongMethodIs405WithAllow() async throws {
        let response = await router.response(to: HTTPRequest(method: "POST", path: "/things/1"))
        #expect(response.status == 405)
        #expect(response.headers["Allow"] == "GET, DELETE, HEAD")
        #expect(try JSON.decode(ProblemDocument.self, from: response.body).code == "method-not-allowed")
    }

    @Test func thrownProblemsKeepTheirStatusAndCode() async throws {
        let request = HTTPRequest(method: "GET", path: "/fail", id: "abc")
        let response = await router.response(to: request)
        let problem = try JSON.decode(ProblemDocument.self, from: response.body)
        #expect(response.status == 409)
        #expect(problem == ProblemDocument(
            type: "urn:usbhttpd:problem:held", title: "Held", status: 409, detail: "by x", code: "held",
            instance: "/fail", requestId: "abc"))
    }

    @Test func otherErrorsAre500WithoutDetailsLeaking() async throws {
        let response = await router.response(to: HTTPRequest(method: "GET", path: "/crash"))
        #expect(response.status == 500)
        let problem = try JSON.decode(ProblemDocument.self, from: response.body)
        #expect(problem.code == "internal-error")
        #expect(!problem.detail.contains("secret"))
    }

    /// A handler whose task was cancelled (its client hung up, or the server stops).
    @Test func cancelledHandlersAnswer503() async throws {
        let response = await router.response(to: HTTPRequest(method: "GET", path: "/cancelled"))
        #expect(response.status == 503)
        #expect(try JSON.decode(ProblemDocument.self, from: response.body).code == "request-cancelled")
    }
}

@Suite struct QueryParametersTests {
    @Test func integersInDecimalAndHex() throws {
        let query = QueryParameters([("a", "0x1d6b"), ("b", "42"), ("c", "0X10")])
        #expect(try query.integer("a", in: 0...0xffff) == 0x1d6b)
        #expect(try query.integer("b", in: 0...100) == 42)
        #expect(try query.integer("c", in: 0...100) == 16)
        #expect(try query.integer("missing", in: 0...1) == nil)
    }

    @Test(arguments: ["", "0x", "-1", "1.5", "ten", "0x1g", "99999999999999999999999", "٣"])
    func badIntegersThrow(text: String) {
        #expect(throws: RoutingProblem.self) { try QueryParameters([("n", text)]).integer("n", in: 0...0xffff) }
    }

    @Test func outOfRangeThrows() {
        #expect(throws: RoutingProblem.self) { try QueryParameters([("n", "256")]).integer("n", in: 0...255) }
    }

    @Test func unknownAndRepeatedNamesThrow() {
        #expect(throws: RoutingProblem.self) { try QueryParameters([("x", "1")]).allow(only: ["a"]) }
        #expect(throws: RoutingProblem.self) { try QueryParameters([("a", "1"), ("a", "2")]).allow(only: ["a"]) }
        #expect(throws: Never.self) { try QueryParameters([("a", "1")]).allow(only: ["a", "b"]) }
    }
}

@Suite struct RequestIDTests {
    @Test func acceptsPlainClientIDs() {
        #expect(RequestID.accept("abc-123_x.y") == "abc-123_x.y")
    }

    @Test(arguments: [nil, "", "has space", "new\nline", String(repeating: "a", count: 65), "ü"])
    func replacesOthers(candidate: String?) {
        let id = RequestID.accept(candidate)
        #expect(id != candidate && id.count == 16)
    }
}
