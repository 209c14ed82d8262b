import CLinuxTTY
import Glibc

/// A pseudo-terminal for tests of consoles without USB: the console opens its slave
/// (`/dev/pts/N`, named `pts/N` as a console's tty), the test plays the board on the master.
public final class PseudoTerminal: @unchecked Sendable {
    public let master: Int32
    /// The slave's name under /dev: "pts/N".
    public let name: String

    public init() throws {
        var path = [CChar](repeating: 0, count: 64)
        let master = usbhttpd_tty_open_pty(&path, Int32(path.count))
        guard master >= 0 else { throw PseudoTerminalError.open(errno) }
        self.master = master
        let full = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.name = String(full.dropFirst("/dev/".count))
    }

    /// The board prints `text`.
    public func print(_ text: String) {
        var bytes = Array(text.utf8)
        print(bytes: &bytes)
    }

    public func print(bytes: inout [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { write(master, $0.baseAddress! + sent, $0.count - sent) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// What the console typed, waiting at most `milliseconds` for the first byte.
    public func read(waiting milliseconds: Int32 = 5000) -> [UInt8] {
        var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) == 1 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(master, $0.baseAddress, $0.count) }
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// The board's side hangs up: the console reads EIO, as when its adapter is unplugged.
    public func hangUp() {
        close(master)
    }
}

public enum PseudoTerminalError: Error {
    case open(Int32)
}
