import HTTPServer
import USB

/// The URB channel's messages (protocol `usbhttpd.urb.1`), byte by byte, little-endian: the one
/// place their layout is written in code. docs/urb-channel.md describes the same, and a test
/// holds the two together (URBMessageTests).
enum URBMessage {
    static let subprotocol = "usbhttpd.urb.1"
    static let version: UInt8 = 1

    /// The first byte of every message.
    enum Kind: UInt8 {
        // From the client.
        case submit = 0x01
        case cancel = 0x02
        case operation = 0x03
        // From the daemon.
        case hello = 0x81
        case complete = 0x82
        case result = 0x83
        case event = 0x84
    }

    /// Fixed sizes (what follows them is counted in their fields).
    static let submitHeader = 24
    static let cancelSize = 8
    static let operationSize = 16
    static let helloHeader = 32
    static let completeHeader = 16
    static let resultHeader = 16
    static let eventSize = 8
    static let setupSize = 8

    /// SUBMIT's flags (byte 3).
    enum SubmitFlag {
        static let shortNotOK: UInt8 = 1 << 0
        static let zeroPacket: UInt8 = 1 << 1
        static let all: UInt8 = shortNotOK | zeroPacket
    }

    /// OPERATION's `op` (byte 1), echoed in its RESULT.
    enum Operation: UInt8, CaseIterable {
        case claimInterface = 1
        case releaseInterface = 2
        case setAltSetting = 3
        case clearHalt = 4
        case resetDevice = 5
        case kernelDriverActive = 6
        case detachKernelDriver = 7
        case attachKernelDriver = 8
        case setConfiguration = 9
        case getConfiguration = 10
        /// The channel's messages act under the lease whose token follows (none: empty).
        case useLease = 11
    }

    /// The longest lease token USE_LEASE takes.
    static let maxLeaseToken = 256

    /// EVENT's `event` (byte 1).
    enum Event: UInt8 {
        /// The device left; every transfer in flight has completed (NO_DEVICE) before this.
        case deviceGone = 1
        /// A device is on the port again (a new instance: its address in byte 5).
        case deviceBack = 2
    }

    // MARK: From the client

    /// A SUBMIT's fixed header, as read.
    struct Submit: Equatable {
        var type: TransferType
        var endpoint: UInt8
        var flags: URBFlags
        var id: UInt32
        var length: Int
        var timeout: UInt32
        var isoCount: Int

        /// Bytes after the fixed header before the data: the setup packet, the packet lengths.
        var extraLength: Int { (type == .control ? URBMessage.setupSize : 0) + 4 * isoCount }

        /// Reads the fixed header (`bytes` holds at least ``submitHeader``); what is wrong with
        /// it otherwise.
        static func parse(_ bytes: UnsafeRawBufferPointer) throws(WebSocketFailure) -> Submit {
            guard let type = TransferType(rawValue: bytes[1]) else { throw .policy("SUBMIT of transfer type \(bytes[1])") }
            let flagBits = bytes[3]
            guard flagBits & ~SubmitFlag.all == 0 else { throw .policy("SUBMIT with unknown flags 0x\(String(flagBits, radix: 16))") }
            var flags: URBFlags = []
            if flagBits & SubmitFlag.shortNotOK != 0 { flags.insert(.shortNotOK) }
            if flagBits & SubmitFlag.zeroPacket != 0 { flags.insert(.zeroPacket) }
            let isoCount = Int(u16(bytes, 16))
            guard u16(bytes, 18) == 0, u32(bytes, 20) == 0 else { throw .policy("SUBMIT with reserved bytes set") }
            if type == .isochronous {
                guard (1...IsoLayoutLimits.maxPackets).contains(isoCount) else {
                    throw .policy("an isochronous SUBMIT of \(isoCount) packets (1 to \(IsoLayoutLimits.maxPackets))")
                }
            } else if isoCount != 0 {
                throw .policy("packets in a SUBMIT that is not isochronous")
            }
            if type == .control, bytes[2] & 0x7f != 0 {
                throw .policy("a control SUBMIT on endpoint 0x\(String(bytes[2], radix: 16))")
            }
            return Submit(
                type: type, endpoint: bytes[2], flags: flags, id: u32(bytes, 4), length: Int(u32(bytes, 8)),
                timeout: u32(bytes, 12), isoCount: isoCount)
        }
    }

    struct Cancel: Equatable {
        var id: UInt32

        static func parse(_ bytes: UnsafeRawBufferPointer) throws(WebSocketFailure) -> Cancel {
            guard bytes.count == cancelSize else { throw .policy("a CANCEL of \(bytes.count) bytes (8)") }
            guard bytes[1] == 0, bytes[2] == 0, bytes[3] == 0 else { throw .policy("CANCEL with reserved bytes set") }
            return Cancel(id: u32(bytes, 4))
        }
    }

    struct OperationRequest: Equatable {
        var operation: Operation
        var id: UInt32
        var a: Int32
        var b: Int32

        static func parse(_ bytes: UnsafeRawBufferPointer) throws(WebSocketFailure) -> OperationRequest {
            guard bytes.count >= operationSize else { throw .policy("an OPERATION of \(bytes.count) bytes (16)") }
            guard let operation = Operation(rawValue: bytes[1]) else { throw .policy("OPERATION \(bytes[1])") }
            guard u16(bytes, 2) == 0 else { throw .policy("OPERATION with reserved bytes set") }
            return OperationRequest(
                operation: operation, id: u32(bytes, 4), a: Int32(bitPattern: u32(bytes, 8)),
                b: Int32(bitPattern: u32(bytes, 12)))
        }
    }

    /// The setup packet at `offset`.
    static func setup(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(WebSocketFailure) -> ControlSetup {
        guard let (direction, kind, recipient) = ControlSetup.parts(of: bytes[offset]) else {
            throw .policy("a setup packet with a reserved recipient")
        }
        return ControlSetup(
            direction: direction, kind: kind, recipient: recipient, request: bytes[offset + 1],
            value: u16(bytes, offset + 2), index: u16(bytes, offset + 4), length: u16(bytes, offset + 6))
    }

    static func u16(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    static func u32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }

    // MARK: From the daemon

    struct Hello: Equatable {
        var maxInFlight: UInt32
        var maxTransfer: UInt32
        var maxMessage: UInt32
        var bus: UInt8
        var address: UInt8
        var speed: UInt8
        var configuration: UInt8
        var maxTimeout: UInt32
        var maxBytesInFlight: UInt32
        var scope: UInt8
        var device: String

        var bytes: [UInt8] {
            var out: [UInt8] = [Kind.hello.rawValue, version, 0, 0]
            append32(maxInFlight, &out)
            append32(maxTransfer, &out)
            append32(maxMessage, &out)
            out += [bus, address, speed, configuration]
            append32(maxTimeout, &out)
            append32(maxBytesInFlight, &out)
            out += [scope, 0, 0, 0]
            return out + Array(device.utf8)
        }
    }

    /// COMPLETE's head: the fixed part and each isochronous packet's result (the data follows).
    static func complete(
        id: UInt32, status: TransferStatus, actualLength: Int, error: Int32 = 0, packets: [IsoPacketResult] = []
    ) -> [UInt8] {
        var out: [UInt8] = [Kind.complete.rawValue, status.libusbCode, UInt8(packets.count & 0xff), UInt8(packets.count >> 8)]
        out.reserveCapacity(completeHeader + 8 * packets.count)
        append32(id, &out)
        append32(UInt32(truncatingIfNeeded: actualLength), &out)
        append32(UInt32(bitPattern: error), &out)
        for packet in packets {
            append32(UInt32(truncatingIfNeeded: packet.actualLength), &out)
            append32(UInt32(packet.status.libusbCode), &out)
        }
        return out
    }

    static func result(_ operation: Operation, id: UInt32, error: Int32, value: Int32 = 0) -> [UInt8] {
        var out: [UInt8] = [Kind.result.rawValue, operation.rawValue, 0, 0]
        append32(id, &out)
        append32(UInt32(bitPattern: error), &out)
        append32(UInt32(bitPattern: value), &out)
        return out
    }

    static func event(_ event: Event, bus: UInt8, address: UInt8) -> [UInt8] {
        [Kind.event.rawValue, event.rawValue, 0, 0, bus, address, 0, 0]
    }

    static func append32(_ value: UInt32, _ out: inout [UInt8]) {
        out += [UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)]
    }
}

/// usbfs takes at most 128 packets in one isochronous URB.
enum IsoLayoutLimits {
    static let maxPackets = 128
}
