/// The URB channel's messages as a client writes and reads them, written from
/// docs/urb-channel.md alone (not from the daemon's code), for the tests.
public enum URBWire {
    public static let submitKind: UInt8 = 0x01, cancelKind: UInt8 = 0x02, operationKind: UInt8 = 0x03
    public static let helloKind: UInt8 = 0x81, completeKind: UInt8 = 0x82, resultKind: UInt8 = 0x83, eventKind: UInt8 = 0x84

    /// Transfer types and statuses as libusb numbers them.
    public enum TransferType: UInt8 { case control = 0, isochronous = 1, bulk = 2, interrupt = 3 }
    public enum Status: UInt8 {
        case completed = 0, error, timedOut, cancelled, stall, noDevice, overflow
        /// As COMPLETE's `status` field reads.
        public var code: Int { Int(rawValue) }
    }
    public enum Op: UInt8 {
        case claim = 1, release, altSetting, clearHalt, reset, kernelDriverActive, detachKernelDriver,
            attachKernelDriver, setConfiguration, getConfiguration, useLease
    }

    static func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xff), UInt8((value >> 8) & 0xff)] }
    static func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// A SUBMIT. `setup`: a control transfer's 8 bytes; `packets`: isochronous lengths; `data`: OUT data.
    public static func submit(
        _ type: TransferType, endpoint: UInt8, id: Int, length: Int, timeout: Int = 0, flags: UInt8 = 0,
        setup: [UInt8]? = nil, packets: [Int] = [], data: [UInt8] = []
    ) -> [UInt8] {
        var bytes: [UInt8] = [submitKind, type.rawValue, endpoint, flags]
        bytes += le32(id) + le32(length) + le32(timeout) + le16(packets.count) + le16(0) + le32(0)
        if let setup { bytes += setup }
        for packet in packets { bytes += le32(packet) }
        return bytes + data
    }

    /// A setup packet: bmRequestType, bRequest, wValue, wIndex, wLength.
    public static func setup(_ requestType: UInt8, _ request: UInt8, value: Int = 0, index: Int = 0, length: Int) -> [UInt8] {
        [requestType, request] + le16(value) + le16(index) + le16(length)
    }

    public static func cancel(id: Int) -> [UInt8] { [cancelKind, 0, 0, 0] + le32(id) }

    public static func operation(_ op: Op, id: Int, a: Int = 0, b: Int = 0) -> [UInt8] {
        [operationKind, op.rawValue, 0, 0] + le32(id) + le32(a) + le32(b)
    }

    static func u16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> Int {
        Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
    }
    static func i32(_ bytes: [UInt8], _ at: Int) -> Int { Int(Int32(bitPattern: UInt32(u32(bytes, at)))) }

    public struct Hello: Sendable, Equatable {
        public var version: Int, maxInFlight: Int, maxTransfer: Int, maxMessage: Int
        public var bus: Int, address: Int, speed: Int, configuration: Int, maxTimeout: Int, maxBytesInFlight: Int
        public var scope: Int
        public var device: String

        public init?(_ bytes: [UInt8]) {
            guard bytes.count >= 32, bytes[0] == helloKind else { return nil }
            version = Int(bytes[1])
            maxInFlight = u32(bytes, 4)
            maxTransfer = u32(bytes, 8)
            maxMessage = u32(bytes, 12)
            (bus, address, speed, configuration) = (Int(bytes[16]), Int(bytes[17]), Int(bytes[18]), Int(bytes[19]))
            maxTimeout = u32(bytes, 20)
            maxBytesInFlight = u32(bytes, 24)
            scope = Int(bytes[28])
            device = String(decoding: bytes[32...], as: UTF8.self)
        }
    }

    public struct Complete: Sendable, Equatable {
        public var status: Int, id: Int, actualLength: Int, error: Int
        public var packets: [(actualLength: Int, status: Int)]
        /// IN data, or (error ≠ 0) the reason's bytes.
        public var rest: [UInt8]
        public var reason: String { String(decoding: rest, as: UTF8.self) }

        public init?(_ bytes: [UInt8]) {
            guard bytes.count >= 16, bytes[0] == completeKind else { return nil }
            status = Int(bytes[1])
            let count = u16(bytes, 2)
            id = u32(bytes, 4)
            actualLength = u32(bytes, 8)
            error = i32(bytes, 12)
            guard bytes.count >= 16 + 8 * count else { return nil }
            packets = (0..<count).map { (u32(bytes, 16 + 8 * $0), u32(bytes, 20 + 8 * $0)) }
            rest = Array(bytes[(16 + 8 * count)...])
        }

        public static func == (a: Complete, b: Complete) -> Bool {
            a.status == b.status && a.id == b.id && a.actualLength == b.actualLength && a.error == b.error
                && a.rest == b.rest && a.packets.map(\.actualLength) == b.packets.map(\.actualLength)
        }
    }

    public struct Result: Sendable, Equatable {
        public var op: Int, id: Int, error: Int, value: Int
        public var reason: String

        public init?(_ bytes: [UInt8]) {
            guard bytes.count >= 16, bytes[0] == resultKind else { return nil }
            op = Int(bytes[1])
            id = u32(bytes, 4)
            error = i32(bytes, 8)
            value = i32(bytes, 12)
            reason = String(decoding: bytes[16...], as: UTF8.self)
        }
    }

    public struct Event: Sendable, Equatable {
        public var event: Int, bus: Int, address: Int

        public init?(_ bytes: [UInt8]) {
            guard bytes.count == 8, bytes[0] == eventKind else { return nil }
            event = Int(bytes[1])
            bus = Int(bytes[4])
            address = Int(bytes[5])
        }
    }
}
