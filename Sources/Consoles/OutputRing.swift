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
        guard first < end else { return ([], min(first, end), max(min(first, end), min(offset, end))) }
        let count = Int(min(UInt64(limit), end - first))
        var bytes = [UInt8]()
        bytes.reserveCapacity(count)
        var position = Int(first % UInt64(capacity))
        var left = count
        while left > 0 {
            let run = min(left, capacity - position)
            bytes.append(contentsOf: storage[position..<(position + run)])
            left -= run
            position = (position + run) % capacity
        }
        return (bytes, first, first + UInt64(count))
    }
}
