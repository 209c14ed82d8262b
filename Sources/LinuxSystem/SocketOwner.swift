import Glibc
import SystemPackage

/// Who owns a TCP socket on this machine: the kernel's socket tables (`/proc/net/tcp`,
/// `/proc/net/tcp6`) give every socket's ends and its user. For a loopback connection the
/// client's socket is in them too, so its user tells apart programs that all come from
/// 127.0.0.1 (the per-client connection cap counts them apart).
public enum SocketOwner {
    /// One end of a TCP connection: the address (4 or 16 bytes, network order) and port.
    public struct Endpoint: Hashable, Sendable {
        public var address: [UInt8]
        public var port: UInt16

        public init(address: [UInt8], port: UInt16) {
            self.address = address
            self.port = port
        }

        /// 127.0.0.0/8, ::1, or 127.x mapped into IPv6 (::ffff:127.x.y.z).
        public var isLoopback: Bool {
            switch address.count {
            case 4: return address[0] == 127
            case 16:
                if address == [UInt8](repeating: 0, count: 15) + [1] { return true }
                return address.prefix(10).allSatisfy { $0 == 0 } && address[10] == 0xff && address[11] == 0xff && address[12] == 127
            default: return false
            }
        }

        /// The IPv4 address inside an IPv4-mapped IPv6 one (as a client using IPv4 has it).
        var unmapped: Endpoint? {
            guard address.count == 16, address.prefix(10).allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff
            else { return nil }
            return Endpoint(address: Array(address.suffix(4)), port: port)
        }
    }

    /// The user (uid) of the socket whose local end is `end` and whose peer's port is
    /// `remotePort` (0: any), read from the kernel's tables; nil when none is listed (another
    /// network namespace, or the connection already gone).
    public static func user(ofSocketAt end: Endpoint, remotePort: UInt16) -> UInt32? {
        var tries: [(String, Endpoint)] = []
        if end.address.count == 4 { tries.append(("/proc/net/tcp", end)) } else { tries.append(("/proc/net/tcp6", end)) }
        if let unmapped = end.unmapped { tries.append(("/proc/net/tcp", unmapped)) }
        for (table, wanted) in tries {
            guard let text = readTable(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                // A closed connection's TIME_WAIT entry keeps its port for a minute, owned by no
                // one (uid 0): a new socket on the same port is the one asked about.
                guard let entry = entry(line), entry.state != timeWait, entry.local == wanted,
                    remotePort == 0 || entry.remote.port == remotePort
                else { continue }
                return entry.uid
            }
        }
        return nil
    }

    /// One line of a table: "sl local rem st tx:rx tr:when retrnsmt uid timeout inode …",
    /// addresses as the kernel's hex words in host order, ports in hex.
    static func entry(_ line: Substring) -> (local: Endpoint, remote: Endpoint, state: UInt8, uid: UInt32)? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 7, let local = endpoint(fields[1]), let remote = endpoint(fields[2]),
            let state = UInt8(fields[3], radix: 16), let uid = UInt32(fields[7])
        else { return nil }
        return (local, remote, state, uid)
    }

    /// TCP_TIME_WAIT, as the tables print a connection's state.
    static let timeWait: UInt8 = 0x06

    /// "0100007F:1F90" (127.0.0.1:8080 on a little-endian machine), or 32 hex digits for IPv6.
    static func endpoint(_ text: Substring) -> Endpoint? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[0].count == 8 || parts[0].count == 32, let port = UInt16(parts[1], radix: 16) else {
            return nil
        }
        var address: [UInt8] = []
        var at = parts[0].startIndex
        while at < parts[0].endIndex {
            let next = parts[0].index(at, offsetBy: 8)
            guard let word = UInt32(parts[0][at..<next], radix: 16) else { return nil }
            // The kernel printed the 32-bit word as it sits in memory, read as a host-order number.
            withUnsafeBytes(of: word) { address += $0 }
            at = next
        }
        return Endpoint(address: address, port: port)
    }

    /// The whole table (open(2), read(2) until end of file, close(2)); nil if unreadable.
    private static func readTable(_ path: String) -> String? {
        guard let descriptor = try? FileDescriptor.open(path, .readOnly, options: .closeOnExec) else { return nil }
        defer { try? descriptor.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < 64 << 20 {
            guard let count = try? chunk.withUnsafeMutableBytes({ try descriptor.read(into: $0) }), count > 0 else { break }
            bytes += chunk.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
