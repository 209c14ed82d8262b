import Foundation
import Glibc
import TestSupport

/// The virtual USB lab, booted once for the whole test process: `lab/lab run` with the
/// guest agent (lab/guest/agent.py) as its command and usbhttpd started in the guest.
/// The lab powers off by itself when this process ends (`--watch-pid`).
actor Lab {
    static let shared = Lab()
    private var boot: Task<LabSession, any Error>?

    func session() async throws -> LabSession {
        if let boot { return try await boot.value }
        let task = Task { try await LabSession.boot() }
        boot = task
        return try await task.value
    }

    /// Interface 0 of a lab device, as a test wants it at its start.
    enum Interface {
        case claimed, released
    }

    /// The opening most lab tests share: the booted lab and the id of its device with `serial`
    /// (one of `LabSession`'s serials), interface 0 claimed or released as `interface` says.
    func device(_ serial: String, _ interface: Interface) async throws -> (LabSession, String) {
        let lab = try await session()
        let id = try await lab.deviceID(serial: serial)
        switch interface {
        case .claimed: try await lab.claimed(id)
        case .released: try await lab.released(id)
        }
        return (lab, id)
    }
}

/// A running lab: the daemon and the agent, each through a port forwarded to 127.0.0.1.
struct LabSession: Sendable {
    let daemon: TestHTTPClient
    let agent: TestHTTPClient
    let log: String

    struct ExecResult: Sendable, Decodable {
        let rc: Int
        let stdout: String
        let stderr: String
    }

    /// Runs a shell command in the guest. A command left in the background must send its
    /// output elsewhere (`> file 2>&1 &`), or the agent waits for it.
    func exec(_ command: String, timeout: Int = 120) async throws -> ExecResult {
        let body = try JSONSerialization.data(withJSONObject: ["cmd": command, "timeout": timeout])
        let result = try await agent.request(
            "POST", "/exec", body: Array(body), headers: ["Content-Type": "application/json"],
            timeout: TimeInterval(timeout + 30))
        return try JSONDecoder().decode(ExecResult.self, from: Data(result.body))
    }

    /// `exec` that must succeed; returns its standard output.
    @discardableResult
    func run(_ command: String) async throws -> String {
        let result = try await exec(command)
        guard result.rc == 0 else {
            throw TestFailure("guest command failed (\(result.rc)): \(command)\n\(result.stdout)\(result.stderr)")
        }
        return result.stdout
    }

    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The usbhttpd binary built beside this test binary.
    static var daemonBinary: String {
        let own = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = own.deletingLastPathComponent()
        if directory.lastPathComponent == "MacOS" || directory.pathExtension == "xctest" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("usbhttpd").path
    }

    static func boot() async throws -> LabSession {
        let daemonPort = try freePort()
        let agentPort = try freePort()
        let logPath = root.appendingPathComponent(".build-lab/lab-tests.log").path
        try FileManager.default.createDirectory(
            atPath: root.appendingPathComponent(".build-lab").path, withIntermediateDirectories: true)

        let process = try ChildProcess(
            "/bin/bash",
            [
                root.appendingPathComponent("lab/lab").path, "run",
                "--forward", "127.0.0.1:\(daemonPort):8080", "--forward", "127.0.0.1:\(agentPort):7000",
                "--watch-pid", String(getpid()), "--cwd", root.path, "--",
                "/usr/bin/python3", root.appendingPathComponent("lab/guest/agent.py").path, "7000",
            ], output: logPath)

        let session = LabSession(
            daemon: TestHTTPClient(port: daemonPort), agent: TestHTTPClient(port: agentPort), log: logPath)
        try await waitFor("the lab's agent", seconds: 240, process: process, log: logPath) {
            (try? await session.agent.request("GET", "/ping", timeout: 2))?.status == 200
        }
        _ = try await session.run(sharedDaemonStart)
        try await waitFor("usbhttpd in the lab", seconds: 60, process: process, log: logPath) {
            (try? await session.daemon.request("GET", "/v1/devices", timeout: 5))?.status == 200
        }
        return session
    }

    /// How the lab's shared daemon starts (on 8080, no tokens, the devices a test may need).
    static var sharedDaemonStart: String {
        "setsid \(daemonBinary) --host 0.0.0.0 --insecure --expose-risky-devices --port 8080 --log-level debug > \"$TMPDIR/usbhttpd.log\" 2>&1 &"
    }

    /// Runs `body` with another daemon on 8080 in the shared one's place (started by `start`, a
    /// shell command; stopped after, whatever `body` did), then the shared one again.
    func withDaemon(started start: String, _ body: () async throws -> Void) async throws {
        _ = try await run(Self.stopDaemons)
        var failure: (any Error)?
        do {
            _ = try await run(start)
            try await body()
        } catch {
            failure = error
        }
        _ = try await run(Self.stopDaemons)
        _ = try await run(Self.sharedDaemonStart)
        guard await eventually(within: 60, { (try? await daemon.request("GET", "/v1/devices", timeout: 5))?.status == 200 })
        else { throw TestFailure("the shared daemon did not come back") }
        if let failure { throw failure }
    }

    /// Stops every daemon in the guest and waits until none runs (a guest shell command).
    static let stopDaemons = "pkill -x usbhttpd; for i in $(seq 100); do pgrep -x usbhttpd >/dev/null || break; sleep 0.1; done"

    /// The daemon's log in the guest.
    func daemonLog() async throws -> String { try await run("cat \"$TMPDIR/usbhttpd.log\"") }

    /// Waits up to `seconds` for a line of the daemon's log that contains every one of
    /// `parts`; that line, nil if none came.
    func logLine(containing parts: [String], within seconds: Int = 10) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            let log = try await daemonLog()
            if let line = log.split(separator: "\n").first(where: { line in parts.allSatisfy { line.contains($0) } }) {
                return String(line)
            }
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Runs `script` in the guest in the background (for work longer than one agent request
    /// may stay silent) and waits up to `seconds` for it to end: its exit status ("" if it did
    /// not end in time) and its output.
    func runDetached(_ script: String, name: String, within seconds: Int = 600) async throws -> (status: String, output: String) {
        let rc = "\"$TMPDIR/\(name).rc\"", log = "\"$TMPDIR/\(name).log\""
        try await run(
            """
            rm -f \(rc)
            ( ( \(script)
              ) > \(log) 2>&1; echo $? > \(rc) ) > /dev/null 2>&1 &
            """)
        let deadline = ContinuousClock.now + .seconds(seconds)
        var status = ""
        while status.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            status = try await run("cat \(rc) 2>/dev/null || true").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return (status, try await run("cat \(log)"))
    }

    private static func waitFor(
        _ what: String, seconds: Int, process: ChildProcess, log: String, _ ready: () async -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await ready() { return }
            guard process.isRunning else {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw TestFailure("the lab stopped before \(what) was ready:\n\(text.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw TestFailure("\(what) was not ready within \(seconds) s; see \(log)")
    }

    /// A TCP port that was free a moment ago.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
