/// A console's recent output, bounded: the last `capacity` bytes, each at its offset in
/// everything the console ever printed (0 for its first byte). A reader asks from an offset
/// and gets what is still kept from there; one that fell behind the ring learns how much it
/// missed. A value, no I/O.
public struct OutputRing: Sendable {
    public let capacity: Int
    private var storage: [UInt8]
    /// Offset of the next byte to come (all bytes ever appended).
    public private(set) var end: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.storage = [UInt8](repeating: 0, count: capacity)
    }

    /// The offset of the oldest byte still kept.
    public var start: UInt64 { end - UInt64(min(Int(clamping: end), capacity)) }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        // Only the last `capacity` bytes of a large piece can be kept.
        let kept = bytes.count > capacity ? UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - capacity)...]) : bytes
        end += UInt64(bytes.count - kept.count)
        var position = Int(end % UInt64(capacity))
        var from = 0
        storage.withUnsafeMutableBytes { ring in
            while from < kept.count {
                let run = min(kept.count - from, capacity - position)
                ring.baseAddress!.advanced(by: position).copyMemory(from: kept.baseAddress!.advanced(by: from), byteCount: run)
                from += run
                position = (position + run) % capacity
            }
        }
        end += UInt64(kept.count)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// What is kept from `offset` on, at most `limit` bytes: the bytes, the offset they begin
    /// at (later than `offset` when the ring no longer has it: the difference was lost), and
    /// the offset after them.
    public func read(from offset: UInt64, limit: Int = .max) -> (bytes: [UInt8], from: UInt64, next: UInt64) {
        let first = max(offset, start)
        guard first < end else { return ([], end, end) }
        let wanted = Int(min(UInt64(limit), end - first))
        var from: UInt64 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: wanted) { buffer, count in
            (count, from) = copy(from: offset, into: UnsafeMutableRawBufferPointer(buffer))
        }
        return (bytes, from, from + UInt64(bytes.count))
    }

    /// ``read(from:limit:)`` into `buffer` (as much as fits): how many bytes, and the offset they
    /// begin at. No array is made (a streamed body's read).
    public func copy(from offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> (count: Int, from: UInt64) {
        let first = max(offset, start)
        guard first < end else { return (0, end) }
        let count = Int(min(UInt64(buffer.count), end - first))
        var position = Int(first % UInt64(capacity))
        var done = 0
        storage.withUnsafeBytes { ring in
            while done < count {
                let run = min(count - done, capacity - position)
                buffer.baseAddress!.advanced(by: done).copyMemory(from: ring.baseAddress!.advanced(by: position), byteCount: run)
                done += run
                position = (position + run) % capacity
            }
        }
        return (count, first)
    }
}
