import Consoles
import Testing

/// The ring keeps the last bytes at their offsets; a reader behind it learns what it lost.
@Suite struct OutputRingTests {
    @Test func keepsTheLastBytesAtTheirOffsets() {
        var ring = OutputRing(capacity: 8)
        ring.append(Array("hello".utf8))
        #expect(ring.start == 0 && ring.end == 5)
        #expect(ring.read(from: 0).bytes == Array("hello".utf8))
        ring.append(Array(" world".utf8))
        #expect(ring.start == 3 && ring.end == 11)
        let late = ring.read(from: 0)
        #expect(late.bytes == Array("lo world".utf8) && late.from == 3 && late.next == 11, "3 bytes lost to a late reader")
        let part = ring.read(from: 6, limit: 3)
        #expect(part.bytes == Array("wor".utf8) && part.from == 6 && part.next == 9)
        let none = ring.read(from: 11)
        #expect(none.bytes.isEmpty && none.next == 11)
        let future = ring.read(from: 99)
        #expect(future.bytes.isEmpty && future.from == 11 && future.next == 11, "an offset not reached yet is the end")
    }

    @Test(arguments: [1, 3, 7, 8, 9, 20])
    func aPieceOfAnySizeWrapsRight(piece: Int) {
        var ring = OutputRing(capacity: 8)
        var all: [UInt8] = []
        for round in 0..<10 {
            let bytes = (0..<piece).map { UInt8(truncatingIfNeeded: round * 31 + $0) }
            ring.append(bytes)
            all += bytes
        }
        #expect(ring.end == UInt64(all.count))
        let kept = ring.read(from: 0)
        #expect(kept.bytes == Array(all.suffix(8)))
        #expect(kept.from == UInt64(all.count - min(8, all.count)))
    }
}
