import Foundation
@testable import HTTPServer
@testable import LinuxSystem
import Logging
import Testing
import TestSupport

/// Clients that open connections and send nothing, or too many: the server stays up for the
/// others.
@Suite struct ConnectionLimitTests {
    let live = LiveServerTests()

    @Test func manyIdleConnectionsDoNotKeepOthersOut() async throws {
        try await live.withServer { server, client in
            let idle = try (0..<60).map { _ in try RawConnection(port: Int(server.port)) }
            let served = try await client.request("POST", "/echo", body: Array("still here".utf8))
            #expect(served.status == 200 && served.text == "still here")
            for connection in idle { connection.close() }
        }
    }

    @Test func aClientOverItsConnectionLimitIsTurnedAway() async throws {
        try await live.withServer(configure: { $0.perClientConnectionLimit = 4 }) { server, _ in
            let allowed = try (0..<4).map { _ in try RawConnection(port: Int(server.port)) }
            let fifth = try RawConnection(port: Int(server.port))
            #expect(await fifth.closedByServer(within: 2), "the fifth connection from one address is closed")
            #expect(!(await allowed[0].closedByServer(within: 0.2)))
            for connection in allowed { connection.close() }
        }
    }

    @Test func aSilentConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await live.withServer(configure: { $0.idleTimeout = 1 }) { server, _ in
            let silent = try RawConnection(port: Int(server.port))
            try silent.send("GET /echo HTTP/1.1\r\nHost: x\r\n")  // and never the end of the headers
            #expect(!(await silent.closedByServer(within: 0.3)))
            #expect(await silent.closedByServer(within: 4), "closed after about a second of silence")
        }
    }

    @Test func theServerAnswersOverTLS() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (certificate, key) = try await makeCertificate(in: folder)
        let tls = HTTPServerConfiguration.TLS(
            certificatePEM: try String(contentsOfFile: certificate, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: key, encoding: .utf8))
        try await live.withServer(configure: { $0.tls = tls }) { server, _ in
            let url = "https://127.0.0.1:\(server.port)/echo"
            let secure = try await runProgram("/usr/bin/curl", ["-sS", "--cacert", certificate, "--data-binary", "over tls", url])
            #expect(secure == "over tls")
            let unverified = try? await runProgram("/usr/bin/curl", ["-sS", "--data-binary", "x", url])
            #expect(unverified == nil, "a client that does not trust the certificate fails")
            let plain = try? await runProgram("/usr/bin/curl", ["-sS", "--max-time", "5", "http://127.0.0.1:\(server.port)/echo"])
            #expect(plain == nil || plain?.contains("x") == false, "no plain HTTP on a TLS port")
        }
    }
}

/// Issue 24, class 4: on loopback a client is its address and its local user, so one user's
/// program that holds its connections does not lock another user's out of 127.0.0.1.
@Suite struct LoopbackClientTests {
    let live = LiveServerTests()

    @Test func theKernelsTableNamesTheOwnerOfALoopbackSocket() throws {
        let line: Substring =
            "   3: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1"
        let entry = try #require(SocketOwner.entry(line))
        #expect(entry.local == SocketOwner.Endpoint(address: [127, 0, 0, 1], port: 0xD431))
        #expect(entry.remote.port == 8080 && entry.uid == 1000 && entry.state == 1)
        // A TIME_WAIT entry of an earlier connection on the same port is no one's (uid 0).
        let waiting = try #require(SocketOwner.entry(
            "   4: 0100007F:D431 0100007F:1F91 06 00000000:00000000 03:00000F1C 00000000     0        0 0 3 0000000000000000"))
        #expect(waiting.state == SocketOwner.timeWait && waiting.uid == 0)
        let v6 = try #require(SocketOwner.endpoint("00000000000000000000000001000000:1F90"))
        #expect(v6.address == [UInt8](repeating: 0, count: 15) + [1] && v6.isLoopback)
        #expect(SocketOwner.Endpoint(address: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 9], port: 1).isLoopback)
        #expect(!SocketOwner.Endpoint(address: [10, 0, 0, 1], port: 1).isLoopback)
        #expect(SocketOwner.entry("  sl  local_address rem_address   st tx_queue rx_queue") == nil)
    }

    @Test func clientsAreCountedByAddressAndOnLoopbackByUser() {
        let users: [UInt16: UInt32] = [1: 1000, 2: 1000, 3: 1001]
        let clients = ClientConnections(limit: 2) { users[$0.port] }
        let greedy = [1, 2].map { SocketOwner.Endpoint(address: [127, 0, 0, 1], port: UInt16($0)) }
        for peer in greedy {
            #expect(clients.admit(peer))
            #expect(clients.started(peer) == "address 127.0.0.1 user 1000")
        }
        let another = SocketOwner.Endpoint(address: [127, 0, 0, 1], port: 2)  // user 1000 again
        #expect(!clients.admit(another), "user 1000 holds its two")
        #expect(clients.admit(SocketOwner.Endpoint(address: [127, 0, 0, 1], port: 3)), "user 1001 is not held back")
        let remote = SocketOwner.Endpoint(address: [10, 0, 0, 7], port: 1)
        #expect(clients.client(of: remote) == "address 10.0.0.7", "the table is read for loopback only")
        clients.closed("address 127.0.0.1 user 1000")
        #expect(clients.admit(another) && clients.held(by: "address 127.0.0.1 user 1000") == 1)
    }

    /// A program of another user holds every connection its client may have; this process's
    /// (root's) requests on the same 127.0.0.1 are still served, and that user's next one is not.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func anotherUsersProgramDoesNotLockThisOneOut() async throws {
        try await live.withServer(configure: { $0.perClientConnectionLimit = 4 }) { server, client in
            let script = """
                import socket, sys
                held = [socket.create_connection(("127.0.0.1", \(server.port))) for _ in range(4)]
                print("held", flush=True)
                fifth = socket.create_connection(("127.0.0.1", \(server.port)))
                fifth.settimeout(3)
                try:
                    closed = fifth.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                except socket.timeout:
                    closed = False
                print("fifth closed" if closed else "fifth open", flush=True)
                sys.stdin.read()
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script]
            let output = Pipe(), input = Pipe()
            process.standardOutput = output
            process.standardInput = input
            try process.run()
            defer {
                try? input.fileHandleForWriting.close()
                process.waitUntilExit()
            }
            let lines = try await offThePool { () throws -> String in
                var text = ""
                while text.components(separatedBy: "\n").count < 3 {
                    let data = output.fileHandleForReading.availableData
                    if data.isEmpty { break }
                    text += String(decoding: data, as: UTF8.self)
                }
                return text
            }
            #expect(lines.contains("held") && lines.contains("fifth closed"), "\(lines)")
            let served = try await client.request("POST", "/echo", body: Array("root still gets in".utf8))
            #expect(served.status == 200 && served.text == "root still gets in")
        }
    }
}
