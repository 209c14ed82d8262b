import EventLoop
import Glibc
import LinuxSystem
import SystemPackage

/// Reading: bytes from the transport into the frame parser, its events to the handler (a
/// message's start, payload pieces, end), pings answered, the closing handshake; on the loop.
extension WebSocketConnection {
    func readAvailable() {
        guard !reading, !paused else { return }
        if case .ended = phase { return }
        reading = true
        defer { reading = false }
        // Bounded per turn, so one busy client cannot hold the loop: the rest on the next turn.
        var budget = 1 << 20
        while budget > 0 && !paused {
            let count: Int?
            do {
                count = try transport.read(into: readBuffer)
            } catch {
                end(code: nil, reason: "the connection failed: \(error)")
                return
            }
            guard let count else { return }
            guard count > 0 else {
                end(code: nil, reason: "the client hung up")
                return
            }
            budget -= count
            parse(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
            if case .ended = phase { return }
            // A read that did not fill the buffer emptied a plain socket: what comes later raises
            // a new edge. (One recv less per message: under emulation a system call is dear.)
            if count < readBuffer.count && transport.shortReadEmptiesSocket { return }
        }
        if !paused { loop.execute { [weak self] in self?.readAvailable() } }
    }

    func parse(_ bytes: UnsafeRawBufferPointer) {
        do {
            try parser.parse(bytes) { (event) throws(WebSocketFailure) in try self.handle(event) }
        } catch {
            fail(error)
        }
    }

    func handle(_ event: WebSocketFrameParser.Event) throws(WebSocketFailure) {
        switch event {
        case .messageStart:
            guard case .open = phase else { return }
            try handler?.messageStart()
        case .payload(let piece):
            guard case .open = phase else { return }
            try handler?.messagePayload(piece)
        case .messageEnd:
            guard case .open = phase else { return }
            try handler?.messageEnd()
        case .ping(let payload):
            guard case .open = phase else { return }
            enqueue(Outgoing(head: WebSocketFrameHeader.bytes(opcode: WebSocketFrameHeader.pong, length: payload.count) + payload))
        case .pong:
            break
        case .close(let code, let reason):
            switch phase {
            case .open:
                // Answered with the same code, then over.
                closeAnswered = true
                closeCode = code
                closeReason = reason
                phase = .closing(code: code ?? 1000, reason: reason)
                enqueue(Outgoing(head: Self.closeFrame(code ?? 1000, reason: ""), body: nil, onSent: nil))
            case .closing(let ours, let why):
                closeAnswered = true
                end(code: ours, reason: why)
            case .ended:
                break
            }
        }
    }

    /// The client sent what may not be sent: logged once, closed with the failure's code.
    func fail(_ failure: WebSocketFailure) {
        guard case .open = phase else { return }
        logger.notice(
            "WebSocket closed: the client broke the protocol",
            metadata: ["ws.close_code": "\(failure.code.rawValue)", "ws.close_reason": .string(failure.reason)])
        close(failure.code, reason: failure.reason)
    }

    static func closeFrame(_ code: UInt16, reason: String) -> [UInt8] {
        let reasonBytes = Array(reason.utf8)
        return WebSocketFrameHeader.bytes(opcode: WebSocketFrameHeader.close, length: 2 + reasonBytes.count)
            + [UInt8(code >> 8), UInt8(code & 0xff)] + reasonBytes
    }
}
