import CGnuTLS
import Glibc
import LinuxSystem
import SystemPackage

/// The bytes of a connection taken over from libmicrohttpd for another protocol, both ways,
/// without blocking: the plain socket, or the connection's own TLS session over it. On the
/// event loop only.
protocol ConnectionTransport: AnyObject {
    /// Bytes read into `buffer`; 0 once the peer closed its side; nil when none wait now.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int?
    /// Whether a read that returned less than the buffer holds emptied the socket, so that
    /// what comes later raises a new edge (plain TCP). Not so for TLS: a read returns one
    /// record at most, and GnuTLS may hold bytes of the next one it took from the socket,
    /// which neither the socket nor gnutls_record_check_pending shows: it reads to EAGAIN.
    var shortReadEmptiesSocket: Bool { get }
    /// Writes `pieces` in order: the bytes taken (perhaps only some), nil when none now.
    func write(_ pieces: UnsafeMutableBufferPointer<iovec>) throws(Errno) -> Int?
    /// Bytes taken earlier that still wait to reach the socket (a TLS record half sent):
    /// whether they are all out now.
    func flush() throws(Errno) -> Bool
}

/// A plain TCP socket: recv and sendmsg, straight from the caller's memory.
final class PlainTransport: ConnectionTransport {
    let socket: FileDescriptor

    init(socket: FileDescriptor) { self.socket = socket }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        try StreamSocket.receive(socket, into: buffer)
    }

    var shortReadEmptiesSocket: Bool { true }

    func write(_ pieces: UnsafeMutableBufferPointer<iovec>) throws(Errno) -> Int? {
        try StreamSocket.send(socket, pieces)
    }

    func flush() throws(Errno) -> Bool { true }
}

/// The connection's own GnuTLS session (the one libmicrohttpd made, over the same socket):
/// records read and written on the loop while libmicrohttpd leaves the connection suspended.
/// Pieces are corked into records (gnutls_record_cork), so a message's header and data go out
/// in one record; a record that could not be sent whole is sent on at the next ``flush()``.
final class TLSTransport: ConnectionTransport {
    private let session: gnutls_session_t
    /// Corked bytes wait for gnutls_record_uncork to send them.
    private var uncorkPending = false

    init(session: gnutls_session_t) { self.session = session }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        while true {
            let result = gnutls_record_recv(session, buffer.baseAddress, buffer.count)
            if result >= 0 { return result }
            switch Int32(result) {
            case GNUTLS_E_AGAIN: return nil
            case GNUTLS_E_INTERRUPTED: continue
            // A peer that closes without close_notify: its side is closed all the same.
            case GNUTLS_E_PREMATURE_TERMINATION: return 0
            default: throw Errno.ioError
            }
        }
    }

    var shortReadEmptiesSocket: Bool { false }

    func write(_ pieces: UnsafeMutableBufferPointer<iovec>) throws(Errno) -> Int? {
        guard try flush() else { return nil }
        gnutls_record_cork(session)
        var total = 0
        for piece in pieces where piece.iov_len > 0 {
            var offset = 0
            while offset < piece.iov_len {
                // Corked: GnuTLS copies into its buffer and sends nothing yet.
                let result = gnutls_record_send(session, piece.iov_base! + offset, piece.iov_len - offset)
                guard result >= 0 else {
                    if Int32(result) == GNUTLS_E_INTERRUPTED { continue }
                    throw Errno.ioError
                }
                offset += result
            }
            total += piece.iov_len
        }
        uncorkPending = true
        _ = try flush()
        return total
    }

    func flush() throws(Errno) -> Bool {
        guard uncorkPending else { return true }
        while true {
            let result = gnutls_record_uncork(session, 0)
            if result >= 0 {
                uncorkPending = false
                return true
            }
            switch Int32(result) {
            case GNUTLS_E_AGAIN: return false
            case GNUTLS_E_INTERRUPTED: continue
            default: throw Errno.brokenPipe
            }
        }
    }
}
