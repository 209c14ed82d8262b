/// One packet of an isochronous transfer as it ended (`struct libusb_iso_packet_descriptor`):
/// isochronous packets succeed or fail one by one, and the transfer as a whole still completes.
public struct IsoPacketResult: Sendable, Equatable {
    /// The bytes the packet offered (OUT) or had room for (IN).
    public var length: Int
    /// The bytes that moved.
    public var actualLength: Int
    public var status: TransferStatus

    public init(length: Int, actualLength: Int, status: TransferStatus) {
        self.length = length
        self.actualLength = actualLength
        self.status = status
    }
}

/// A finished isochronous transfer: the transfer's own status, every packet's, and for IN the
/// bytes each packet brought, packed one after another (packet `i` starts where the actual
/// lengths before it end).
public struct IsoTransferResult: Sendable, Equatable {
    public var status: TransferStatus
    public var packets: [IsoPacketResult]
    public var data: [UInt8]

    public init(status: TransferStatus, packets: [IsoPacketResult], data: [UInt8] = []) {
        self.status = status
        self.packets = packets
        self.data = data
    }

    /// The bytes that moved, over every packet.
    public var actualLength: Int { packets.reduce(0) { $0 + $1.actualLength } }

    /// Packets that did not complete.
    public var failedPackets: Int { packets.count(where: { $0.status != .completed }) }
}

/// The packets of one isochronous transfer, where each starts in the buffer.
struct IsoLayout {
    /// usbfs takes at most 128 packets in one URB.
    static let maxPackets = 128

    let lengths: [Int]

    var totalLength: Int { lengths.reduce(0, +) }

    /// Moves each IN packet's bytes (which the kernel leaves at the packet's own offset) to the
    /// front of `buffer`, one after another; returns how many bytes that makes.
    static func pack(_ results: [IsoPacketResult], in buffer: UnsafeMutableRawPointer) -> Int {
        var offset = 0
        var packed = 0
        for packet in results {
            if packet.actualLength > 0 && packed != offset {
                (buffer + packed).copyMemory(from: buffer + offset, byteCount: packet.actualLength)
            }
            packed += packet.actualLength
            offset += packet.length
        }
        return packed
    }
}
