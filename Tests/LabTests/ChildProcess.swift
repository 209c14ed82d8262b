import CLinux
import Glibc
import TestSupport

/// A child started with posix_spawn, with no blocked and no ignored signals: Foundation's
/// Process passes on the test runner's blocked signal mask, and a QEMU started that way
/// cannot be stopped with SIGTERM. Output (stdout and stderr) goes to a file, and the child
/// gets no other file of the test process: a pipe another test had open at that moment (to
/// read a program's output to its end) would otherwise stay open in the child, and that test
/// would wait for it as long as the child lives (the lab: the whole run).
struct ChildProcess: Sendable {
    let pid: pid_t

    init(_ executable: String, _ arguments: [String], output: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        usbhttpd_spawn_add_closefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw TestFailure("posix_spawn \(executable) failed: \(result)") }
        pid = child
    }

    var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// Waits up to `seconds` for the child to exit (then kills it); its exit code, nil if it
    /// had to be killed.
    func waitForExit(seconds: Int = 10) async throws -> Int32? {
        for _ in 0..<seconds * 10 {
            if let code = exitCode() { return code }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGKILL)
        _ = exitCode()
        return nil
    }

    /// The exit code once the child has exited (reaping it), -signal if a signal ended it,
    /// nil while it runs.
    func exitCode() -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : -signal
    }
}
