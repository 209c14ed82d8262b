import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The bench page in a real browser: Tests/BrowserTests (pytest, selenium, Debian's
    /// chromium headless) on the host against a daemon in the lab that asks for tokens (admin,
    /// transfer and read ones), in the shared daemon's place for the while. script/test installs
    /// selenium into the Python client's venv; script/bootstrap installs chromium.
    @Suite struct BenchPageLabTests {
        @Test func theBenchPageInChromium() async throws {
            let python = PythonClientTests.venv
            for tool in [python, "/usr/bin/chromium", "/usr/bin/chromedriver"] {
                try #require(FileManager.default.isExecutableFile(atPath: tool), "no \(tool): run script/bootstrap and script/test")
            }
            let lab = try await Lab.shared.session()
            let tmp = try await lab.run("echo \"$TMPDIR\"").trimmingCharacters(in: .whitespacesAndNewlines)
            let tokens = ["admin": Self.token(), "transfer": Self.token(), "read": Self.token()]
            let file = "\(tmp)/page-tokens"
            try """
                bench-admin admin \(tokens["admin"]!)
                bench-ci transfer \(tokens["transfer"]!)
                viewer read \(tokens["read"]!)

                """.write(toFile: file, atomically: true, encoding: .utf8)
            let start =
                "setsid \(LabSession.daemonBinary) --host 0.0.0.0 --insecure --expose-risky-devices --port 8080 "
                + "--token-file \(file) --node-name bench-7 --log-level debug >> \"$TMPDIR/page-daemon.log\" 2>&1 < /dev/null &"
            let log = LabSession.root.appendingPathComponent(".build-lab/browser-tests.log").path
            try await lab.withDaemon(started: start) {
                #expect(await eventually { (try? await lab.daemon.request("GET", "/healthz", timeout: 5))?.status == 200 })
                let environment = [
                    "PAGE_URL=\(lab.daemon.base)", "LAB_AGENT=\(lab.agent.base)", "PAGE_DAEMON_START=\(start)",
                    "PAGE_DAEMON_STOP=\(LabSession.stopDaemons)",
                    "PAGE_ADMIN_TOKEN=\(tokens["admin"]!)", "PAGE_TRANSFER_TOKEN=\(tokens["transfer"]!)",
                    "PAGE_READ_TOKEN=\(tokens["read"]!)", "PYTHONDONTWRITEBYTECODE=1",
                ] + ["PAGE_SHOTS", "PAGE_FIGURES", "PATH", "HOME"].compactMap { name in
                    ProcessInfo.processInfo.environment[name].map { "\(name)=\($0)" }
                }
                let pytest = try ChildProcess(
                    "/usr/bin/env",
                    ["-i"] + environment + [
                        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                        LabSession.root.appendingPathComponent("Tests/BrowserTests").path,
                        LabSession.root.appendingPathComponent("Tests/BrowserTests").path,
                    ], output: log)
                let status = try await pytest.waitForExit(seconds: 480)
                let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(status == 0, "the browser tests (\(log)):\n\(output)")
            }
        }

        static func token() -> String {
            (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        }
    }
}
