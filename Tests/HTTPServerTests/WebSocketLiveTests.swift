import HTTPServer
import Logging
import Synchronization
import Testing
import TestSupport

/// WebSockets through the real server on a loopback port (plain HTTP: libmicrohttpd's upgrade):
/// the handshake, messages both ways (a message's data sent from the sender's memory), pings,
/// the closing handshake both ways, frames a client may not send, a client that hangs up,
/// and a server that stops with WebSockets open.
@Suite struct WebSocketLiveTests {
    /// How each WebSocket of the test server ended, by the tag in its path's query.
    static let closed = Mutex<[String: String]>([:])

    /// Echoes each binary message; a message "close" makes the server close with 4000.
    final class Echo: WebSocketHandler, @unchecked Sendable {
        let connection: WebSocketConnection
        let tag: String
        var message: [UInt8] = []

        init(_ connection: WebSocketConnection, tag: String) {
            self.connection = connection
            self.tag = tag
        }

        func messageStart() { message = [] }
        func messagePayload(_ piece: MaskedBytes) { message += piece.unmasked() }

        func messageEnd() throws(WebSocketFailure) {
            if message == Array("close".utf8) { return connection.close(.normal, reason: "asked to") }
            if message == Array("bad".utf8) { throw .policy("a message the protocol does not know") }
            // The echo's data is sent from memory kept until it is out.
            let kept = UnsafeMutableRawBufferPointer.allocate(byteCount: message.count, alignment: 1)
            kept.copyBytes(from: message)
            connection.send([0xee], body: UnsafeRawBufferPointer(kept)) { kept.deallocate() }
        }

        func connectionClosed(code: UInt16?, reason: String) {
            let tag = self.tag
            WebSocketLiveTests.closed.withLock { $0[tag] = "\(code.map(String.init) ?? "none") \(reason)" }
        }
    }

    struct Responder: HTTPResponder {
        func handler(for request: HTTPRequest) -> HTTPHandler {
            HTTPHandler { request in
                let accept = try WebSocketUpgrade.accept(request, subprotocol: "usbhttpd.urb.1")
                let tag = request.query.first { $0.name == "tag" }?.value ?? ""
                return .webSocket(
                    WebSocketUpgrade(accept: accept, subprotocol: "usbhttpd.urb.1", maxMessage: 1 << 20) { connection in
                        Echo(connection, tag: tag)
                    })
            }
        }
    }

    func withServer(_ body: (HTTPServer) async throws -> Void) async throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.shutdownGrace = 0.2
        let server = HTTPServer(configuration: configuration, responder: Responder(), logger: Logger(label: "test"))
        try server.start()
        do {
            try await body(server)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    static func waitForClose(_ tag: String) async -> String? {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let how = closed.withLock({ $0[tag] }) { return how }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    @Test func messagesGoBothWaysAndTheClientsCloseIsAnswered() async throws {
        try await withServer { server in
            let socket = try await TestWebSocket(port: Int(server.port), path: "/ws?tag=echo")
            #expect(socket.status == 101)
            #expect(socket.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            #expect(socket.headers["sec-websocket-protocol"] == "usbhttpd.urb.1")
            for size in [0, 1, 125, 126, 65535, 65536, 300_000] {
                let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                try socket.send(payload)
                #expect(try await socket.message() == [0xee] + payload, "\(size) bytes")
            }
            // A message in three frames, a ping between them.
            try socket.sendRaw(
                TestWebSocket.frame(2, [1, 2], fin: false) + TestWebSocket.frame(9, [7])
                    + TestWebSocket.frame(0, [3], fin: false) + TestWebSocket.frame(0, [4]))
            #expect(try await socket.receive() == TestWebSocket.Frame(opcode: 10, fin: true, payload: [7]))
            #expect(try await socket.message() == [0xee, 1, 2, 3, 4])
            try socket.sendRaw(TestWebSocket.frame(8, [0x0f, 0xa0] + Array("done".utf8)))
            let answer = try #require(try await socket.receive())
            #expect(answer.closeCode == 4000)
            #expect(await socket.closedByServer(within: 5))
            #expect(await Self.waitForClose("echo") == "4000 done")
        }
    }

    @Test func theServerClosesWithACodeAndAReason() async throws {
        try await withServer { server in
            let socket = try await TestWebSocket(port: Int(server.port), path: "/ws?tag=server-close")
            try socket.send(Array("close".utf8))
            let frame = try #require(try await socket.receive())
            #expect(frame.closeCode == 1000 && frame.closeReason == "asked to")
            try socket.sendRaw(TestWebSocket.frame(8, [0x03, 0xe8]))
            #expect(await socket.closedByServer(within: 5))
            #expect(await Self.waitForClose("server-close") == "1000 asked to")
        }
    }

    @Test(arguments: [
        (TestWebSocket.frame(2, [1], masked: false), 1002), (TestWebSocket.frame(1, Array("text".utf8)), 1003),
        (TestWebSocket.frame(2, [UInt8](repeating: 0, count: (1 << 20) + 1)), 1009),
        (TestWebSocket.frame(2, Array("bad".utf8)), 1008),
    ])
    func aFrameThatMayNotBeSentClosesWithItsCode(bytes: [UInt8], code: Int) async throws {
        try await withServer { server in
            let tag = "bad-\(code)"
            let socket = try await TestWebSocket(port: Int(server.port), path: "/ws?tag=\(tag)")
            try? socket.sendRaw(bytes)
            let frame = try #require(try await socket.receive())
            #expect(frame.closeCode == UInt16(code), "\(frame)")
            #expect(await socket.closedByServer(within: 5), "closed after two seconds at most")
            #expect(await Self.waitForClose(tag) != nil)
        }
    }

    @Test func aClientThatHangsUpEndsItsWebSocketAtOnce() async throws {
        try await withServer { server in
            let socket = try await TestWebSocket(port: Int(server.port), path: "/ws?tag=hangup")
            try socket.send([1])
            _ = try await socket.message()
            socket.connection.close()
            #expect(await Self.waitForClose("hangup") == "none the client hung up")
        }
    }

    @Test func aServerThatStopsClosesItsWebSocketsWithGoingAway() async throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.shutdownGrace = 0.1
        let server = HTTPServer(configuration: configuration, responder: Responder(), logger: Logger(label: "test"))
        try server.start()
        let socket = try await TestWebSocket(port: Int(server.port), path: "/ws?tag=shutdown")
        try socket.send([5])
        _ = try await socket.message()
        let stopping = Task { await server.shutdown() }
        let frame = try #require(try await socket.receive())
        #expect(frame.closeCode == 1001)
        await stopping.value
        #expect(await Self.waitForClose("shutdown") != nil)
        #expect(await socket.closedByServer(within: 5))
    }

    @Test func aRequestThatIsNoHandshakeGetsAProblem() async throws {
        try await withServer { server in
            let plain = try await TestHTTPClient(port: Int(server.port)).get("/ws")
            #expect(problemMismatch(plain, status: 426, code: "websocket-upgrade-required") == nil)
            #expect(plain.header("Upgrade") == "websocket")
            let other = try await TestWebSocket(port: Int(server.port), path: "/ws", protocols: "chat")
            #expect(other.status == 400)
        }
    }
}
