import Foundation
import Glibc
import Testing
import TestSupport

/// The children the lab tests start keep none of the test process's files: a pipe another
/// test is reading to its end must not stay open in a child that lives for the whole run
/// (the lab did, and a TLS test then waited for curl's output until CI's limit).
@Suite struct ChildProcessTests {
    @Test func aChildKeepsNoneOfTheParentsPipes() async throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)  // no O_CLOEXEC, as Foundation's Pipe
        let child = try ChildProcess("/bin/sleep", ["5"], output: "/dev/null")
        defer { kill(child.pid, SIGKILL); _ = child.exitCode() }
        close(ends[1])
        let reader = ends[0]
        // With the write end closed here and not inherited, the read sees the end at once.
        let sawEnd = try await offThePool { () -> Bool in
            var poller = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 2000) == 1 else { return false }
            var byte: UInt8 = 0
            return read(reader, &byte, 1) == 0
        }
        close(reader)
        #expect(sawEnd, "the child holds the pipe's write end")
    }
}
