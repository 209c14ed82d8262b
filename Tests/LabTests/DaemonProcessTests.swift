import Foundation
import Glibc
import Testing
import TestSupport

/// The usbhttpd executable as a process on this machine (no lab needed): it serves, and
/// SIGTERM or SIGINT stop it cleanly.
@Suite struct DaemonProcessTests {
    @Test(arguments: [SIGTERM, SIGINT])
    func stopsCleanlyOnSignal(signal: Int32) async throws {
        let port = Int.random(in: 20000...40000)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("usbhttpd-\(port).log").path
        let daemon = try ChildProcess(
            LabSession.daemonBinary, ["--host", "127.0.0.1", "--port", String(port)], output: log)
        let client = TestHTTPClient(port: port)
        var served = false
        for _ in 0..<100 where !served {
            served = (try? await client.request("GET", "/v1/devices", timeout: 2))?.status == 200
            if !served { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(served, "the daemon answered")
        kill(daemon.pid, signal)
        let code = try await daemon.waitForExit()
        #expect(code == 0, "exited with 0 within 10 s")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("stopped"), "\(text)")
        try? FileManager.default.removeItem(atPath: log)
    }

    @Test func refusesAnAddressItCannotListenOn() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("usbhttpd-bad.log").path
        let daemon = try ChildProcess(LabSession.daemonBinary, ["--host", "no such host!", "--insecure"], output: log)
        let code = try await daemon.waitForExit()
        #expect(code != nil && code != 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("cannot resolve the listen address"), "\(text)")
    }
}
