import Foundation
import HTTPServer
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
