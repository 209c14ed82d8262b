import Glibc

/// A body's pieces waiting to be written to a socket, in order, each framed as an HTTP/1.1
/// chunk (size line, data, CRLF) or sent as it is: what the next sendmsg should carry, and
/// which pieces a send finished. No I/O: ``SocketBodyWriter`` does the sending.
///
/// The pieces' bytes are not copied: each points at memory its owner keeps unchanged until
/// the piece is reported sent (a usbfs transfer buffer, say).
struct ChunkedWrites {
    enum Framing { case chunked, raw }

    struct Piece {
        let tag: Int
        let bytes: UnsafeRawPointer
        let count: Int
        /// The chunk's size line: hex digits and CRLF, at most 18 bytes.
        var header: (UInt64, UInt64, UInt16) = (0, 0, 0)
        var headerLength = 0
    }

    let framing: Framing
    private var pieces: [Piece] = []
    /// Pieces before this index are sent (dropped in batches).
    private var first = 0
    /// Bytes of the first piece (framing included) already sent.
    private var sentOfFirst = 0

    init(framing: Framing) { self.framing = framing }

    /// Nothing waits to be sent.
    var isEmpty: Bool { first == pieces.count }

    /// Pieces waiting.
    var count: Int { pieces.count - first }

    /// Queues `count` bytes at `bytes` (a chunk of its own), reported by `tag` once sent.
    /// An empty piece would end a chunked body: it is reported sent at once instead (returns false).
    mutating func append(tag: Int, bytes: UnsafeRawPointer, count: Int) -> Bool {
        guard count > 0 else { return false }
        var piece = Piece(tag: tag, bytes: bytes, count: count)
        if framing == .chunked {
            let digits = (Int.bitWidth - count.leadingZeroBitCount + 3) / 4
            withUnsafeMutableBytes(of: &piece.header) { line in
                for index in 0..<digits {
                    line[index] = Self.hexDigits[(count >> (4 * (digits - 1 - index))) & 0xf]
                }
                line[digits] = 0x0d
                line[digits + 1] = 0x0a
            }
            piece.headerLength = digits + 2
        }
        pieces.append(piece)
        return true
    }

    /// The bytes a piece puts on the wire: size line, data, CRLF (chunked), or data (raw).
    private func framedLength(_ piece: Piece) -> Int {
        framing == .chunked ? piece.headerLength + piece.count + 2 : piece.count
    }

    /// Fills `iovecs` with the bytes to send next, in order, from what is waiting: at most
    /// `iovecs.count` entries. `headers` is room for the size lines, 18 bytes for each piece
    /// gathered (so `18 * iovecs.count / 3` bytes at least), valid until the send returns.
    /// Returns how many entries it filled.
    func gather(into iovecs: UnsafeMutableBufferPointer<iovec>, headers: UnsafeMutableRawPointer) -> Int {
        var filled = 0
        var skip = sentOfFirst
        func emit(_ base: UnsafeRawPointer, _ length: Int) {
            if skip >= length {
                skip -= length
                return
            }
            iovecs[filled] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base + skip), iov_len: length - skip)
            skip = 0
            filled += 1
        }
        var index = first
        while index < pieces.count && filled + 3 <= iovecs.count {
            var piece = pieces[index]
            if framing == .chunked {
                let slot = headers + 18 * (index - first)
                withUnsafeBytes(of: &piece.header) { slot.copyMemory(from: $0.baseAddress!, byteCount: piece.headerLength) }
                emit(slot, piece.headerLength)
                emit(piece.bytes, piece.count)
                emit(Self.crlf.utf8Start, 2)
            } else {
                emit(piece.bytes, piece.count)
            }
            index += 1
        }
        return filled
    }

    /// `count` bytes went out: calls `done` with the tag of each piece now wholly sent, in order.
    mutating func sent(_ count: Int, done: (Int) -> Void) {
        var left = count
        while left > 0 && first < pieces.count {
            let remaining = framedLength(pieces[first]) - sentOfFirst
            if left < remaining {
                sentOfFirst += left
                return
            }
            left -= remaining
            sentOfFirst = 0
            let tag = pieces[first].tag
            first += 1
            done(tag)
        }
        if first == pieces.count {
            pieces.removeAll(keepingCapacity: true)
            first = 0
        } else if first > 64 {
            pieces.removeFirst(first)
            first = 0
        }
    }

    /// Drops what waits (the client went away): their tags, in order.
    mutating func discard() -> [Int] {
        defer {
            pieces.removeAll()
            first = 0
            sentOfFirst = 0
        }
        return pieces[first...].map(\.tag)
    }

    private static let crlf: StaticString = "\r\n"
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
