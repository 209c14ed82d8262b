import Consoles
import Foundation
import HTTPServer
import Logging
import Testing
import TestSupport
import USB
import USBFakes

@testable import USBService

/// The console routes through the real server, the console a pseudo-terminal that plays the
/// board (the lab's tests do the same on real USB serial chips): the kept boot log, a followed
/// output, input, the line, one writer, the WebSocket both ways, the board going away.
@Suite struct ConsoleRouteTests {
    struct Bench {
        let bench: FakeBench
        let board: PseudoTerminal
        let server: HTTPServer
        let client: TestHTTPClient
        let base = "/v1/devices/1-2/consoles/0"
    }

    static func bench(boot: String = "", ring: Int = 4096) async throws -> Bench {
        let bench = FakeBench()
        let board = try PseudoTerminal()
        let book = ConsoleBook(loop: bench.loop, ringCapacity: ring, logger: Logger(label: "test"))
        book.update([ConsoleInfo(device: "1-2", interface: 0, tty: board.name, driver: "pty")])
        let server = try bench.server(consoles: book)
        let client = TestHTTPClient(port: Int(server.port))
        // Opened (raw) before the board prints: a pseudo-terminal not yet opened would echo and
        // translate what it is sent.
        #expect(await eventually { await Self.console(client)?["state"] as? String == "open" })
        let made = Bench(bench: bench, board: board, server: server, client: client)
        if !boot.isEmpty {
            board.print(boot)
            #expect(await eventually { await Self.outputEnd(made) == boot.utf8.count })
        }
        return made
    }

    /// Device 1-2's first console, as GET …/consoles lists it.
    static func console(_ client: TestHTTPClient) async -> [String: Any]? {
        ((try? await client.get("/v1/devices/1-2/consoles").object())?["consoles"] as? [[String: Any]])?.first
    }

    static func readers(_ b: Bench) async -> Int? { await console(b.client)?["readers"] as? Int }

    static func outputEnd(_ b: Bench) async -> Int? { (await console(b.client)?["output"] as? [String: Any])?["end"] as? Int }

    @Test func theListShowsEachConsoleWithItsLineAndOutput() async throws {
        let b = try await Self.bench(boot: "hello\r\n")
        let list = try await b.client.get("/v1/devices/1-2/consoles")
        #expect(list.status == 200)
        let console = try #require((try list.object()["consoles"] as? [[String: Any]])?.first)
        #expect(console["interface"] as? Int == 0 && console["tty"] as? String == b.board.name)
        #expect(console["driver"] as? String == "pty" && console["state"] as? String == "open")
        #expect((console["output"] as? [String: Any])?["capacity"] as? Int == 4096)
        #expect((console["line"] as? [String: Any])?["baud"] != nil)
        #expect(console["writer_held"] as? Bool == false)
        let details = try await b.client.get("/v1/devices/1-2").object()
        #expect((details["consoles"] as? [[String: Any]])?.first?["tty"] as? String == b.board.name, "the device's details list it")
        await b.server.shutdown()
    }

    @Test func aLateClientReadsTheBootLogAndFromAnOffset() async throws {
        let b = try await Self.bench(boot: "U-Boot 2024.01\r\nlogin: ")
        let all = try await b.client.get(b.base + "/output")
        #expect(all.status == 200 && all.text == "U-Boot 2024.01\r\nlogin: ")
        #expect(all.header("X-Console-From") == "0" && all.header("X-Console-TTY") == b.board.name)
        let tail = try await b.client.get(b.base + "/output?from=16")
        #expect(tail.text == "login: " && tail.header("X-Console-From") == "16")
        let connection = try RawConnection(port: Int(b.server.port))
        try connection.send("GET \(b.base)/output?from=end HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let end = try #require(try await connection.chunkedResponse(within: 10))
        #expect(end.status == 200 && end.body.isEmpty && end.complete)
        // Trailers for a client that asks: where to go on from, and what it missed.
        let asking = try RawConnection(port: Int(b.server.port))
        try asking.send("GET \(b.base)/output?from=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\n\r\n")
        let trailed = try #require(try await asking.chunkedResponse(within: 10))
        #expect(trailed.complete && trailed.trailers["x-console-next"] == "23" && trailed.trailers["x-console-lost"] == "0")
        let bad = try await b.client.get(b.base + "/output?from=-1")
        #expect(problemMismatch(bad, status: 400, code: "invalid-parameter") == nil)
        await b.server.shutdown()
    }

    @Test func aFollowedOutputGetsWhatComesAndIsCutWhenTheBoardGoes() async throws {
        let b = try await Self.bench(boot: "boot\r\n")
        let connection = try RawConnection(port: Int(b.server.port))
        try connection.send("GET \(b.base)/output?follow=true&from=end HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\n\r\n")
        // The follower is counted once its response started.
        #expect(await eventually { await Self.readers(b) == 1 })
        b.board.print("$ ")
        #expect(await eventually { await Self.outputEnd(b) == 8 })
        // A second follower that hangs up is no reader any more.
        let leaving = try RawConnection(port: Int(b.server.port))
        try leaving.send("GET \(b.base)/output?follow=true&from=end HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(await eventually { await Self.readers(b) == 2 })
        leaving.close()
        #expect(await eventually { await Self.readers(b) == 1 })
        b.board.hangUp()
        // The body is cut: no last chunk, the client sees it end early.
        let response = try #require(try await connection.chunkedResponse(within: 10))
        #expect(response.status == 200 && !response.complete)
        #expect(response.body == Array("$ ".utf8) && response.headers["x-console-from"] == "6")
        let after = try await b.client.get(b.base + "/output")
        #expect(problemMismatch(after, status: 404, code: "console-not-found") == nil, "a console that went is not there")
        await b.server.shutdown()
    }

    @Test func inputIsTypedAndTheLineIsSet() async throws {
        let b = try await Self.bench()
        let typed = try await b.client.request("POST", b.base + "/input", body: Array("reboot\r".utf8))
        let written = try typed.object()["written"] as? Int
        #expect(typed.status == 200 && written == 7)
        #expect(b.board.read() == Array("reboot\r".utf8))
        let line = try await b.client.request("PUT", b.base + "/line?baud=74880&stop_bits=2&flow=rtscts")
        #expect(line.status == 200, "\(line.text)")
        let settings = try #require(try line.object()["line"] as? [String: Any])
        #expect(settings["baud"] as? Int == 74880 && settings["stop_bits"] as? Int == 2 && settings["flow"] as? String == "rtscts")
        for (query, code) in [("parity=sometimes", "invalid-parameter"), ("baud=3", "invalid-parameter"), ("data_bits=9", "invalid-parameter"), ("speed=9600", "unknown-parameter")] {
            let refused = try await b.client.request("PUT", b.base + "/line?" + query)
            #expect(problemMismatch(refused, status: 400, code: code) == nil, "\(query)")
        }
        // The board reads nothing: the tty fills and takes no more; the rest is dropped.
        let big = [UInt8](repeating: 0x41, count: 512 << 10)
        let stuck = try await b.client.request("POST", b.base + "/input?timeout_ms=300", body: big)
        #expect(problemMismatch(stuck, status: 504, code: "console-input-timeout") == nil)
        #expect(stuck.text.contains("of 524288 bytes"), "\(stuck.text)")
        let noLines = try await b.client.request("PUT", b.base + "/modem")
        #expect(problemMismatch(noLines, status: 400, code: "missing-parameter") == nil)
        let none = try await b.client.request("POST", "/v1/devices/1-2/consoles/1/input", body: [1])
        #expect(problemMismatch(none, status: 404, code: "console-not-found") == nil)
        let other = try await b.client.get("/v1/devices/9-9/consoles")
        #expect(problemMismatch(other, status: 404, code: "device-not-found") == nil)
        await b.server.shutdown()
    }

    /// The board printing as fast as the tty takes it: every byte reaches a WebSocket reader
    /// that keeps up, in order, none lost in the daemon, though four times the ring (the
    /// default 1 MiB) passes through it (the tty is read a bounded piece a turn of the loop,
    /// so that readers have their turns in between).
    @Test func aFloodPassesThroughTheDaemonWithNoByteLost() async throws {
        let b = try await Self.bench(ring: 1 << 20)
        let socket = try await TestWebSocket(port: Int(b.server.port), path: b.base + "/ws?from=end&write=false", protocols: "usbhttpd.console.1")
        #expect(socket.status == 101)
        #expect(await eventually { await Self.readers(b) == 1 })
        let total = 4 << 20
        let board = b.board
        let printer = Thread {
            var bytes = (0..<total).map { UInt8($0 % 251) }
            board.print(bytes: &bytes)
        }
        printer.start()
        var received: [UInt8] = []
        received.reserveCapacity(total)
        while received.count < total, let message = try await socket.message(within: 10) {
            received += message
        }
        #expect(received.count == total)
        let wrong = received.indices.first { received[$0] != UInt8($0 % 251) }
        #expect(wrong == nil, "the first wrong byte: \(String(describing: wrong))")
        await b.server.shutdown()
    }

    /// A lease granted over the console's interface ends a writer that typed without it (as it
    /// ends streams); a reader reads on. The lease's holder types again through it.
    @Test func aLeaseGrantedLaterEndsTheTypingButNotTheReading() async throws {
        let b = try await Self.bench()
        let port = Int(b.server.port)
        let writer = try await TestWebSocket(port: port, path: b.base + "/ws", protocols: "usbhttpd.console.1")
        let reader = try await TestWebSocket(port: port, path: b.base + "/ws?write=false", protocols: "usbhttpd.console.1")
        #expect(writer.status == 101 && reader.status == 101)
        let lease = try await b.client.request("POST", "/v1/devices/1-2/leases?interface=0&ttl_ms=60000")
        #expect(lease.status == 201 || lease.status == 200, "\(lease.text)")
        let token = try lease.object()["token"] as? String ?? ""
        #expect(await writer.closedByServer(within: 5), "the writer is cut")
        b.board.print("still here\r\n")
        #expect(try await reader.message() == Array("still here\r\n".utf8), "the reader reads on")
        let refused = try await b.client.request("POST", b.base + "/input", body: [0x0d])
        #expect(problemMismatch(refused, status: 423, code: "lease-held") == nil)
        let typed = try await b.client.request("POST", b.base + "/input", body: [0x0d], headers: ["X-USB-Lease": token])
        #expect(typed.status == 200, "\(typed.text)")
        await b.server.shutdown()
    }

    /// A client that hangs up at each step lets go of what it held at once: a POST waiting for
    /// a full tty (its input dropped, the writer free), a WebSocket writer before its handshake
    /// was answered and after.
    @Test func aClientThatHangsUpAtAnyStepLetsGoOfTheWriter() async throws {
        let b = try await Self.bench()
        let port = Int(b.server.port)
        // The board reads nothing: a big POST waits for the tty, with a long timeout, and hangs up.
        let poster = try RawConnection(port: port)
        let big = [UInt8](repeating: 0x41, count: 512 << 10)
        try poster.send("POST \(b.base)/input?timeout_ms=60000 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(big.count)\r\n\r\n")
        try poster.send(bytes: big)
        #expect(await eventually { await Self.writerHeld(b) == true })
        poster.close()
        #expect(await eventually(within: 5) { await Self.writerHeld(b) == false }, "let go at once, not after 60 s")
        // A WebSocket writer that leaves during its handshake, and one that leaves after it.
        let early = try RawConnection(port: port)
        try early.send(
            "GET \(b.base)/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: usbhttpd.console.1\r\n\r\n")
        early.close()
        var late: TestWebSocket?
        #expect(await eventually {
            late = try? await TestWebSocket(port: port, path: b.base + "/ws", protocols: "usbhttpd.console.1")
            return late?.status == 101
        }, "the early one's writer was let go")
        late?.close()
        #expect(await eventually { await Self.writerHeld(b) == false })
        await b.server.shutdown()
    }

    static func writerHeld(_ b: Bench) async -> Bool? { await console(b.client)?["writer_held"] as? Bool }

    /// A tty the daemon cannot open is listed with why, and its routes say so (503).
    @Test func aConsoleTheDaemonCannotOpenIsListedUnavailable() async throws {
        let bench = FakeBench()
        let book = ConsoleBook(loop: bench.loop, ringCapacity: 4096, logger: Logger(label: "test"))
        book.update([ConsoleInfo(device: "1-2", interface: 1, tty: "ttyACM99", driver: "cdc_acm")])
        let server = try bench.server(consoles: book)
        let client = TestHTTPClient(port: Int(server.port))
        var console: [String: Any]?
        #expect(await eventually {
            console = await Self.console(client)
            return console?["state"] as? String == "unavailable"
        })
        #expect((console?["reason"] as? String)?.contains("ttyACM99") == true, "\(String(describing: console))")
        let input = try await client.request("POST", "/v1/devices/1-2/consoles/1/input", body: [0x0d])
        #expect(problemMismatch(input, status: 503, code: "console-unavailable") == nil)
        await server.shutdown()
    }

    /// Output the ring no longer keeps is said lost in a text message, before what follows it.
    @Test func aWebSocketReaderIsToldOfOutputItLost() async throws {
        let boot = String(repeating: "0123456789abcdef", count: 640)  // 10240 bytes, a 4096-byte ring
        let b = try await Self.bench(boot: boot)
        let reader = try await TestWebSocket(port: Int(b.server.port), path: b.base + "/ws?write=false&from=0", protocols: "usbhttpd.console.1")
        #expect(reader.status == 101)
        let notice = try #require(try await reader.receive(within: 10))
        #expect(notice.opcode == 1, "a text message first, not \(notice.opcode) (\(notice.payload.count) bytes)")
        #expect(String(decoding: notice.payload.prefix(100), as: UTF8.self) == #"{"lost":6144,"next":6144}"#)
        var kept: [UInt8] = []
        while kept.count < 4096, let message = try await reader.message(within: 10) { kept += message }
        #expect(kept.count == 4096 && String(decoding: kept, as: UTF8.self) == String(boot.suffix(4096)), "\(kept.count) bytes")
        // A reader that keeps up hears no notice.
        let current = try await TestWebSocket(port: Int(b.server.port), path: b.base + "/ws?write=false&from=end", protocols: "usbhttpd.console.1")
        b.board.print("$ ")
        let next = try #require(try await current.receive(within: 10))
        #expect(next.opcode == 2 && next.payload == Array("$ ".utf8))
        await b.server.shutdown()
    }

    @Test func theWebSocketCarriesBothWaysAndOneWriterAtATime() async throws {
        let b = try await Self.bench(boot: "login: ")
        let port = Int(b.server.port)
        let writer = try await TestWebSocket(port: port, path: b.base + "/ws", protocols: "usbhttpd.console.1")
        #expect(writer.status == 101)
        #expect(try await writer.message() == Array("login: ".utf8), "the kept output first")
        try writer.send(Array("root\r".utf8))
        #expect(b.board.read() == Array("root\r".utf8))
        b.board.print("# ")
        #expect(try await writer.message() == Array("# ".utf8))
        // A second writer is refused; a reader is let in and reads along.
        let second = try await TestWebSocket(port: port, path: b.base + "/ws", protocols: "usbhttpd.console.1")
        #expect(second.status == 409)
        let post = try await b.client.request("POST", b.base + "/input", body: [0x03])
        #expect(problemMismatch(post, status: 409, code: "console-writer-busy") == nil)
        let reader = try await TestWebSocket(port: port, path: b.base + "/ws?write=false&from=end", protocols: "usbhttpd.console.1")
        #expect(reader.status == 101)
        b.board.print("ls\r\n")
        #expect(try await reader.message() == Array("ls\r\n".utf8))
        try reader.send([0x03])
        #expect(await reader.closedByServer(within: 5), "a reader that types is closed (1008)")
        // The board goes: the writer's socket is closed.
        b.board.hangUp()
        #expect(await writer.closedByServer(within: 5))
        await b.server.shutdown()
    }
}
