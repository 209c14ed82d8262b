/// A request body as it arrives, in pieces of any size, cut into a stream's transfers: each
/// ``fill(_:capacity:next:)`` copies the next bytes straight into a transfer's buffer.
struct BodyPieces {
    private var piece: [UInt8] = []
    private var offset = 0
    /// `next` said there is no more, and every byte it gave has been copied out.
    private(set) var ended = false
    /// Bytes the body has given so far.
    private(set) var offered = 0

    /// Copies up to `capacity` bytes into `buffer`, asking `next` for pieces as needed (nil:
    /// the end of the body); how many it copied (fewer only at the end).
    mutating func fill(
        _ buffer: UnsafeMutablePointer<UInt8>, capacity: Int, isolation: isolated (any Actor)? = #isolation,
        next: () async throws -> [UInt8]?
    ) async throws -> Int {
        var filled = 0
        while filled < capacity {
            if offset == piece.count {
                guard !ended, let more = try await next() else {
                    ended = true
                    break
                }
                piece = more
                offset = 0
                offered += more.count
                continue
            }
            let count = min(capacity - filled, piece.count - offset)
            piece.withUnsafeBufferPointer { bytes in
                (buffer + filled).update(from: bytes.baseAddress! + offset, count: count)
            }
            filled += count
            offset += count
        }
        return filled
    }
}
