/// WebSocket frames (RFC 6455 §5) as a server reads and writes them, with no I/O: a parser that
/// takes bytes as they arrive and gives events, and the header of a frame to send.
///
/// The parser never copies a data frame's payload: it hands out pieces of the bytes it was
/// given, still masked (``MaskedBytes``), so that the consumer unmasks each piece straight
/// where it goes (a transfer's buffer, say). Control frames (at most 125 bytes) are kept whole.
/// Everything a client may not send is a ``WebSocketFailure`` naming the close code to answer.
public struct WebSocketFrameParser: Sendable {
    /// What the bytes given so far make.
    public enum Event {
        /// A binary message begins (its first frame's header came).
        case messageStart
        /// The next piece of the current message's payload, in order (still masked).
        case payload(MaskedBytes)
        /// The current message is complete.
        case messageEnd
        case ping([UInt8])
        case pong
        /// The client closes: its code (nil when it gave none) and reason.
        case close(code: UInt16?, reason: String)
    }

    /// The largest message taken (its frames' payloads together): past it, close 1009.
    public let maxMessage: Int

    private enum Stage {
        /// Reading a frame header (`have` bytes of it in `header`).
        case header
        /// Reading `left` payload bytes of a data frame.
        case data(left: Int)
        /// Reading `left` payload bytes of a control frame into `control`.
        case control(opcode: UInt8, left: Int)
    }

    private var stage = Stage.header
    private var header: (UInt64, UInt64) = (0, 0)
    private var have = 0
    private var key: UInt32 = 0
    /// Bytes of the current frame's payload already handed out (the mask's phase).
    private var phase = 0
    private var fin = false
    /// A message is in progress (its last frame has not come).
    private var inMessage = false
    private var messageLength = 0
    private var control: [UInt8] = []

    public init(maxMessage: Int) { self.maxMessage = maxMessage }

    /// Parses `bytes`, calling `event` for what they complete. Throws at the first thing a
    /// client may not send; the connection must then be closed with the failure's code.
    public mutating func parse(
        _ bytes: UnsafeRawBufferPointer, _ event: (Event) throws(WebSocketFailure) -> Void
    ) throws(WebSocketFailure) {
        var offset = 0
        while offset < bytes.count || (offset == bytes.count && pendingEmptyFrame) {
            switch stage {
            case .header:
                let needed = headerLength
                let take = min(needed - have, bytes.count - offset)
                withUnsafeMutableBytes(of: &header) { storage in
                    storage.baseAddress!.advanced(by: have).copyMemory(from: bytes.baseAddress! + offset, byteCount: take)
                }
                have += take
                offset += take
                // The length fields may say the header is longer than first thought.
                if have == needed, headerLength == needed { try frameHeader(event) }
            case .data(let left):
                if left == 0 {
                    try endOfDataFrame(event)
                    continue
                }
                let take = min(left, bytes.count - offset)
                let piece = MaskedBytes(
                    bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]), key: key, phase: phase)
                phase += take
                offset += take
                stage = .data(left: left - take)
                try event(.payload(piece))
                if left - take == 0 { try endOfDataFrame(event) }
            case .control(let opcode, let left):
                let take = min(left, bytes.count - offset)
                let piece = MaskedBytes(
                    bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]), key: key, phase: phase)
                control += piece.unmasked()
                phase += take
                offset += take
                stage = .control(opcode: opcode, left: left - take)
                if left - take == 0 { try endOfControlFrame(opcode, event) }
            }
        }
    }

    /// A frame with no payload is complete once its header is: handled in the loop above.
    private var pendingEmptyFrame: Bool {
        switch stage {
        case .data(let left): left == 0
        case .control(_, let left): left == 0
        case .header: false
        }
    }

    private func byte(_ index: Int) -> UInt8 {
        withUnsafeBytes(of: header) { $0[index] }
    }

    /// The length of the header being read, as far as its first two bytes tell.
    private var headerLength: Int {
        guard have >= 2 else { return 2 }
        let length = byte(1) & 0x7f
        let extended = length == 126 ? 2 : length == 127 ? 8 : 0
        return 2 + extended + (byte(1) & 0x80 != 0 ? 4 : 0)
    }

    private mutating func frameHeader(_ event: (Event) throws(WebSocketFailure) -> Void) throws(WebSocketFailure) {
        let first = byte(0)
        let second = byte(1)
        have = 0
        guard first & 0x70 == 0 else { throw .protocolError("reserved bits set without an extension") }
        guard second & 0x80 != 0 else { throw .protocolError("a client's frame must be masked") }
        let opcode = first & 0x0f
        fin = first & 0x80 != 0
        var length = UInt64(second & 0x7f)
        var at = 2
        if length == 126 {
            length = UInt64(byte(2)) << 8 | UInt64(byte(3))
            at = 4
        } else if length == 127 {
            length = 0
            for index in 2..<10 { length = length << 8 | UInt64(byte(index)) }
            guard length >> 63 == 0 else { throw .protocolError("a payload length with its top bit set") }
            at = 10
        }
        key = withUnsafeBytes(of: header) { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }
        phase = 0
        switch opcode {
        case 0x0, 0x1, 0x2:
            if opcode == 0x0 {
                guard inMessage else { throw .protocolError("a continuation frame without a message") }
            } else {
                guard !inMessage else { throw .protocolError("a new message before the last one ended") }
                guard opcode == 0x2 else { throw .unsupportedData("text messages are not part of this protocol") }
                inMessage = true
                messageLength = 0
                try event(.messageStart)
            }
            guard length <= UInt64(maxMessage - messageLength) else {
                throw .tooBig("a message over \(maxMessage) bytes")
            }
            messageLength += Int(length)
            stage = .data(left: Int(length))
        case 0x8, 0x9, 0xa:
            guard fin else { throw .protocolError("a fragmented control frame") }
            guard length <= 125 else { throw .protocolError("a control frame over 125 bytes") }
            control = []
            stage = .control(opcode: opcode, left: Int(length))
        default:
            throw .protocolError("unknown opcode \(opcode)")
        }
    }

    private mutating func endOfDataFrame(_ event: (Event) throws(WebSocketFailure) -> Void) throws(WebSocketFailure) {
        stage = .header
        if fin {
            inMessage = false
            try event(.messageEnd)
        }
    }

    private mutating func endOfControlFrame(_ opcode: UInt8, _ event: (Event) throws(WebSocketFailure) -> Void)
        throws(WebSocketFailure)
    {
        stage = .header
        let payload = control
        control = []
        switch opcode {
        case 0x9: try event(.ping(payload))
        case 0xa: try event(.pong)
        default:
            guard payload.count != 1 else { throw .protocolError("a close frame of one byte") }
            guard payload.count >= 2 else { return try event(.close(code: nil, reason: "")) }
            let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard WebSocketCloseCode.mayBeSent(code) else { throw .protocolError("close code \(code)") }
            guard let reason = String(validating: payload[2...], as: UTF8.self) else {
                throw .invalidData("a close reason that is not UTF-8")
            }
            try event(.close(code: code, reason: reason))
        }
    }
}

/// A piece of a client's payload as it came, masked: unmasked where it is copied to.
public struct MaskedBytes {
    public let bytes: UnsafeRawBufferPointer
    /// The frame's masking key, as it lies in memory (the wire's byte order).
    let key: UInt32
    /// Where in the frame's payload the piece starts (the key's rotation).
    let phase: Int

    public var count: Int { bytes.count }

    /// Copies the piece, unmasked, to `destination` (room for ``count`` bytes).
    public func copy(to destination: UnsafeMutableRawPointer) {
        copy(from: 0, count: bytes.count, to: destination)
    }

    /// Copies `count` bytes from `offset` in the piece, unmasked, to `destination`.
    public func copy(from offset: Int, count: Int, to destination: UnsafeMutableRawPointer) {
        guard count > 0 else { return }
        // Eight bytes at a time with the key rotated to this piece's phase, then the rest.
        let shift = UInt32(((phase + offset) & 3) * 8)
        let rotated = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
        let wide = UInt64(rotated) | UInt64(rotated) << 32
        let source = bytes.baseAddress! + offset
        var index = 0
        while index + 8 <= count {
            let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ wide
            destination.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        withUnsafeBytes(of: rotated) { keyBytes in
            while index < count {
                destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self) ^ keyBytes[index & 3],
                    toByteOffset: index, as: UInt8.self)
                index += 1
            }
        }
    }

    /// The piece unmasked, as an array.
    public func unmasked() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, initialized in
            if let base = buffer.baseAddress { copy(to: base) }
            initialized = bytes.count
        }
    }
}

/// Why a connection is closed (RFC 6455 §7.4.1), for what the server sends.
public enum WebSocketCloseCode: UInt16, Sendable {
    case normal = 1000
    case goingAway = 1001
    case protocolError = 1002
    case unsupportedData = 1003
    case invalidData = 1007
    case policyViolation = 1008
    case tooBig = 1009
    case internalError = 1011
    case tryAgainLater = 1013

    /// Whether a peer may send `code` in a close frame (1000-1003, 1007-1011, 3000-4999).
    static func mayBeSent(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1011).contains(code) || (3000...4999).contains(code)
    }
}

/// Something a client sent that closes the connection: the code to close with, and why.
public enum WebSocketFailure: Error, Sendable, Equatable {
    case protocolError(String)
    case unsupportedData(String)
    case invalidData(String)
    case tooBig(String)
    /// Meaningless to the protocol on top (a message too short, an unknown kind, …): 1008.
    case policy(String)

    public var code: WebSocketCloseCode {
        switch self {
        case .protocolError: .protocolError
        case .unsupportedData: .unsupportedData
        case .invalidData: .invalidData
        case .tooBig: .tooBig
        case .policy: .policyViolation
        }
    }

    public var reason: String {
        switch self {
        case .protocolError(let text), .unsupportedData(let text), .invalidData(let text), .tooBig(let text),
            .policy(let text):
            text
        }
    }
}

/// The header of a frame the server sends (never masked): FIN set, `opcode`, the length.
public struct WebSocketFrameHeader: Sendable {
    public static let text: UInt8 = 0x1
    public static let binary: UInt8 = 0x2
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xa

    /// At most 10 bytes.
    public static func bytes(opcode: UInt8, length: Int) -> [UInt8] {
        var header: [UInt8] = [0x80 | opcode]
        append(length: length, to: &header)
        return header
    }

    /// Appends the header of a frame of `length` bytes with `opcode` to `output`.
    public static func append(opcode: UInt8, length: Int, to output: inout [UInt8]) {
        output.append(0x80 | opcode)
        append(length: length, to: &output)
    }

    private static func append(length: Int, to output: inout [UInt8]) {
        if length < 126 {
            output.append(UInt8(length))
        } else if length <= 0xffff {
            output += [126, UInt8(length >> 8), UInt8(length & 0xff)]
        } else {
            output.append(127)
            for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: length >> shift)) }
        }
    }
}
