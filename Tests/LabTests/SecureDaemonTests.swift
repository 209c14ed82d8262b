import Foundation
import Glibc
import Testing
import TestSupport

/// The executable with tokens and TLS, on this machine (no devices needed): who gets in, what
/// the log keeps, and what it refuses to start with.
@Suite struct SecureDaemonTests {
    static let readToken = "read-token-0123456789abcdef"
    static let transferToken = "transfer-token-fedcba9876543210"

    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("usbhttpd-\(name)-\(UUID().uuidString)")
    }

    @Test func refusesToListenBeyondLoopbackWithoutTokensAndTLS() async throws {
        let log = temporary("open.log").path
        let daemon = try ChildProcess(LabSession.daemonBinary, ["--host", "0.0.0.0", "--port", "0"], output: log)
        let code = try await daemon.waitForExit()
        #expect(code != nil && code != 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("--insecure"), "\(text)")
    }

    /// Every bound is checked at the start: a value out of range stops it, naming the option.
    @Test(arguments: [
        (["--rate-limit", "-1"], "--rate-limit"), (["--max-streams-per-client", "0"], "--max-streams-per-client"),
        (["--usbfs-budget-mb", "0"], "--usbfs-budget-mb"), (["--allowed-origin", "dash.example"], "--allowed-origin"),
        (["--usbfs-client-share-mb", "0"], "--usbfs-client-share-mb"), (["--max-control-hold-ms", "50"], "--max-control-hold-ms"),
        (["--node-name", "Bench 7\n"], "--node-name"), (["--feature-file", "/tmp/"], "--feature-file"),
        (["--rule", "allow port=3-0"], "port=3-0"), (["--rule", "allow bus=0"], "bus"),
        (["--allowed-host", "a b"], "--allowed-host"), (["--idle-timeout", "100000"], "--idle-timeout"),
        (["--max-streams", "1", "--max-streams-per-device", "2"], "--max-streams-per-device"),
    ])
    func outOfRangeOptionsStopTheStart(arguments: [String], option: String) async throws {
        let log = temporary("options.log").path
        let daemon = try ChildProcess(LabSession.daemonBinary, ["--port", "0"] + arguments, output: log)
        let code = try await daemon.waitForExit()
        #expect(code != nil && code != 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains(option), "\(text)")
    }

    @Test func aBadTokenFileStopsTheStartNamingTheLineNotTheToken() async throws {
        let file = temporary("tokens")
        try "ci read,transfer short-secret\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let log = temporary("badtokens.log").path
        let daemon = try ChildProcess(
            LabSession.daemonBinary, ["--port", "0", "--token-file", file.path], output: log)
        #expect(try await daemon.waitForExit() != 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("line 1") && !text.contains("short-secret"), "\(text)")
    }

    @Test func tokensOverTLSAndNeverInTheLog() async throws {
        let folder = temporary("secure")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (certificate, key) = try await makeCertificate(in: folder)
        let tokens = folder.appendingPathComponent("tokens")
        try """
            # name  scopes    token
            grafana read      \(Self.readToken)
            ci      transfer  \(Self.transferToken)
            """.write(to: tokens, atomically: true, encoding: .utf8)
        chmod(tokens.path, 0o600)
        let port = Int.random(in: 20000...40000)
        let log = folder.appendingPathComponent("daemon.log").path
        let daemon = try ChildProcess(
            LabSession.daemonBinary,
            [
                "--port", String(port), "--log-level", "trace", "--token-file", tokens.path, "--tls-cert", certificate,
                "--tls-key", key,
            ], output: log)
        defer { kill(daemon.pid, SIGTERM) }

        /// curl over TLS: "<status> <WWW-Authenticate>".
        func curl(_ method: String, _ path: String, token: String?) async throws -> String {
            var arguments = [
                "-s", "-o", "/dev/null", "-w", "%{http_code} %header{www-authenticate}", "--cacert", certificate, "-X",
                method,
            ]
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            return try await runProgram("/usr/bin/curl", arguments + ["https://127.0.0.1:\(port)\(path)"])
        }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? await curl("GET", "/healthz", token: nil))?.hasPrefix("200") == true
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready, "the daemon answers over TLS, /healthz without a token")

        #expect(try await curl("GET", "/v1/devices", token: nil) == "401 Bearer realm=\"usbhttpd\"")
        #expect(try await curl("GET", "/v1/devices", token: "nope-nope-nope-nope") == "401 Bearer realm=\"usbhttpd\", error=\"invalid_token\"")
        #expect(try await curl("GET", "/v1/devices", token: Self.readToken).hasPrefix("200"))
        #expect(try await curl("GET", "/metrics", token: nil).hasPrefix("401"))
        #expect(
            try await curl("POST", "/v1/devices/1-1/interfaces/0/claim", token: Self.readToken)
                == "403 Bearer realm=\"usbhttpd\", error=\"insufficient_scope\", scope=\"transfer\"")
        #expect(try await curl("POST", "/v1/devices/1-1/interfaces/0/claim", token: Self.transferToken).hasPrefix("404"), "admitted; no such device here")
        #expect(try await curl("POST", "/v1/devices/1-1/reset", token: Self.transferToken).hasPrefix("403"), "reset is admin")
        let plain = try? await runProgram("/usr/bin/curl", ["-s", "--max-time", "3", "http://127.0.0.1:\(port)/healthz"])
        #expect(plain == nil || plain == "", "no plain HTTP")

        kill(daemon.pid, SIGTERM)
        _ = try await daemon.waitForExit()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("auth.token=grafana"), "requests are logged with the token's name")
        #expect(!text.contains(Self.readToken) && !text.contains(Self.transferToken), "never the token")
        #expect(!text.contains("nope-nope"), "not even a wrong one")
    }
}
