import HTTPServer
import USB

/// The URB channel's message being read, piece by piece as the WebSocket hands them over: its
/// head (the fixed part, a SUBMIT's setup packet and packet lengths) gathered in a small
/// buffer, then an OUT transfer's data unmasked straight into its URB's memory (or, for a
/// SUBMIT that must wait its turn, kept until then). Whatever the protocol does not allow is a
/// ``WebSocketFailure`` that closes the channel: a short or long message, an unknown kind, bad
/// fields, an id reused while in flight, data for an IN transfer.
struct ChannelReader {
    /// Where an OUT SUBMIT's data goes.
    enum Target {
        /// Its transfer, made as its head came.
        case transfer(AsyncTransfer)
        /// Kept in ``ChannelReader/kept``: the SUBMIT waits behind a device operation.
        case kept
        /// Read and dropped: the SUBMIT is refused (said in its COMPLETE).
        case refused(error: Int32, reason: String)
    }

    /// A SUBMIT whose head was read.
    struct Submit {
        var request: AsyncTransferRequest
        var id: UInt32
        var target: Target
    }

    private var head: [UInt8] = []
    private var needed = 1
    private var submit: Submit?
    private var received = 0
    /// The data of a SUBMIT whose target is ``Target/kept``.
    private(set) var kept: [UInt8] = []
    /// What follows an OPERATION's fixed part (USE_LEASE's token).
    private var tail: [UInt8] = []

    init() { head.reserveCapacity(URBMessage.submitHeader + URBMessage.setupSize + 4 * IsoLayoutLimits.maxPackets) }

    mutating func start() {
        head.removeAll(keepingCapacity: true)
        needed = 1
        submit = nil
        received = 0
        kept = []
        tail = []
    }

    mutating func take(_ piece: MaskedBytes, channel: URBChannel) throws(WebSocketFailure) {
        var offset = 0
        while offset < piece.count {
            if head.count < needed {
                let count = min(needed - head.count, piece.count - offset)
                let start = head.count
                head.append(contentsOf: repeatElement(0, count: count))
                head.withUnsafeMutableBytes { piece.copy(from: offset, count: count, to: $0.baseAddress! + start) }
                offset += count
                if head.count == needed { try headGrew(channel) }
                continue
            }
            if submit == nil, head[0] == URBMessage.Kind.operation.rawValue,
                head[1] == URBMessage.Operation.useLease.rawValue
            {
                // USE_LEASE: the lease token follows the fixed part.
                let count = piece.count - offset
                guard tail.count + count <= URBMessage.maxLeaseToken else {
                    throw .policy("a USE_LEASE token over \(URBMessage.maxLeaseToken) bytes")
                }
                let start = tail.count
                tail.append(contentsOf: repeatElement(0, count: count))
                tail.withUnsafeMutableBytes { piece.copy(from: offset, count: count, to: $0.baseAddress! + start) }
                offset += count
                continue
            }
            guard let submit, !submit.request.isIn else {
                throw .policy(self.submit == nil ? "a message longer than its kind" : "data for an IN transfer")
            }
            let count = min(submit.request.length - received, piece.count - offset)
            guard count > 0 else { throw .policy("more OUT data than the SUBMIT's length \(submit.request.length)") }
            switch submit.target {
            case .transfer(let transfer): piece.copy(from: offset, count: count, to: transfer.data.baseAddress! + received)
            case .kept:
                let start = kept.count
                kept.append(contentsOf: repeatElement(0, count: count))
                kept.withUnsafeMutableBytes { piece.copy(from: offset, count: count, to: $0.baseAddress! + start) }
            case .refused: break
            }
            received += count
            offset += count
        }
    }

    /// The head is as long as it was known to need: read what it says, perhaps that it is longer.
    private mutating func headGrew(_ channel: URBChannel) throws(WebSocketFailure) {
        guard head.count > 1 else {
            switch URBMessage.Kind(rawValue: head[0]) {
            case .submit: needed = URBMessage.submitHeader
            case .cancel: needed = URBMessage.cancelSize
            case .operation: needed = URBMessage.operationSize
            default: throw .policy("a message of unknown kind 0x\(String(head[0], radix: 16))")
            }
            return
        }
        guard head[0] == URBMessage.Kind.submit.rawValue else { return }
        let fixed = try withHead { (bytes) throws(WebSocketFailure) in try URBMessage.Submit.parse(bytes) }
        if head.count == URBMessage.submitHeader {
            guard fixed.length <= channel.limits.maxTransfer else {
                throw .tooBig("a SUBMIT of \(fixed.length) bytes (at most \(channel.limits.maxTransfer))")
            }
            needed += fixed.extraLength
            if fixed.extraLength > 0 { return }
        }
        var setup: ControlSetup?
        var packets: [Int] = []
        try withHead { (bytes) throws(WebSocketFailure) in
            if fixed.type == .control {
                let parsed = try URBMessage.setup(bytes, at: URBMessage.submitHeader)
                guard Int(parsed.length) == fixed.length else {
                    throw .policy("a control SUBMIT whose length \(fixed.length) is not its wLength \(parsed.length)")
                }
                setup = parsed
            }
            let start = URBMessage.submitHeader + (fixed.type == .control ? URBMessage.setupSize : 0)
            packets = (0..<fixed.isoCount).map { Int(URBMessage.u32(bytes, start + 4 * $0)) }
        }
        guard fixed.type != .isochronous || packets.reduce(0, +) == fixed.length else {
            throw .policy("an isochronous SUBMIT whose packets add up to \(packets.reduce(0, +)), not its length \(fixed.length)")
        }
        guard channel.inFlight[fixed.id] == nil, !channel.steps.waiting(fixed.id) else {
            throw .policy("SUBMIT id \(fixed.id) is in flight already")
        }
        let request = AsyncTransferRequest(
            type: fixed.type, endpoint: fixed.endpoint, flags: fixed.flags, timeout: fixed.timeout, length: fixed.length,
            setup: setup, isoPackets: packets)
        submit = Submit(request: request, id: fixed.id, target: channel.target(for: request, id: fixed.id))
    }

    /// `body` over the head's bytes, its typed error kept (Array's withUnsafeBytes rethrows untyped).
    private func withHead<T>(_ body: (UnsafeRawBufferPointer) throws(WebSocketFailure) -> T) throws(WebSocketFailure) -> T {
        let result: Result<T, WebSocketFailure> = head.withUnsafeBytes { bytes in
            do throws(WebSocketFailure) { return .success(try body(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    mutating func end(channel: URBChannel) throws(WebSocketFailure) {
        guard head.count == needed else { throw .policy("a message of \(head.count) bytes: shorter than its kind") }
        switch URBMessage.Kind(rawValue: head[0]) {
        case .submit:
            guard let submit else { throw .policy("a SUBMIT without its head") }
            if !submit.request.isIn && received != submit.request.length {
                throw .policy("a SUBMIT with \(received) bytes of OUT data, its length says \(submit.request.length)")
            }
            // Handed over, not kept here: the transfer is the channel's now.
            let data = kept
            self.submit = nil
            kept = []
            channel.submit(submit, kept: data)
        case .cancel:
            let cancel = try withHead { (bytes) throws(WebSocketFailure) in try URBMessage.Cancel.parse(bytes) }
            channel.cancel(cancel.id)
        case .operation:
            let operation = try withHead { (bytes) throws(WebSocketFailure) in
                try URBMessage.OperationRequest.parse(bytes)
            }
            channel.operation(operation, tail: tail)
        default:
            throw .policy("a message of unknown kind")
        }
    }
}
