import EventLoop
import Glibc
import LinuxSystem
import Logging
import SystemPackage

/// What a WebSocket's messages go to, on the event loop. A thrown ``WebSocketFailure`` closes
/// the connection with its code and reason.
public protocol WebSocketHandler: AnyObject {
    /// A binary message begins.
    func messageStart() throws(WebSocketFailure)
    /// The next piece of its payload, in order: copy what you keep (``MaskedBytes/copy(to:)``),
    /// the bytes are reused once this returns.
    func messagePayload(_ piece: MaskedBytes) throws(WebSocketFailure)
    /// The message is complete.
    func messageEnd() throws(WebSocketFailure)
    /// The connection is over (closed by either side, the client gone, the server stopping),
    /// once: everything the handler holds for it must be let go.
    func connectionClosed(code: UInt16?, reason: String)
}

/// A WebSocket (RFC 6455) on a connection libmicrohttpd handed over after its handshake: frames
/// read from the transport and parsed (``WebSocketFrameParser``), binary messages handed to a
/// ``WebSocketHandler`` piece by piece, messages sent with the data straight from the sender's
/// memory (one sendmsg of header and data on a plain socket), pings answered, the closing
/// handshake, and a client that hangs up noticed at once through the connection's
/// ``ConnectionWatch``.
///
/// Lives on the event loop: every method is called there (checked), but ``closeFromElsewhere(_:reason:)``.
public final class WebSocketConnection: @unchecked Sendable {
    public let loop: EventLoop
    /// Lines about this connection carry the request's metadata.
    public let logger: BoundLogger
    let transport: any ConnectionTransport
    let watch: ConnectionWatch
    var handler: (any WebSocketHandler)?
    var parser: WebSocketFrameParser
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Bytes that came with the handshake (libmicrohttpd read them already).
    var leftover: [UInt8]
    var paused = false
    var reading = false

    struct Outgoing {
        var head: [UInt8]
        var body: UnsafeRawBufferPointer?
        var onSent: (() -> Void)?
        var count: Int { head.count + (body?.count ?? 0) }
    }

    var outgoing: [Outgoing] = []
    var firstOutgoing = 0
    var sentOfFirst = 0
    var waitingForRoom = false
    var flushing = false
    /// Bytes queued and not yet sent.
    public private(set) var queuedBytes = 0
    let iovecs: UnsafeMutableBufferPointer<iovec>
    static let maxGather = 64

    enum Phase {
        case open
        /// Our close frame is queued; the client's is awaited (until `deadline`).
        case closing(code: UInt16, reason: String)
        case ended
    }

    var phase = Phase.open
    /// Called once when the connection is over: the server gives the connection back to
    /// libmicrohttpd, which closes it.
    let onEnd: (WebSocketConnection) -> Void

    init(
        transport: any ConnectionTransport, watch: ConnectionWatch, loop: EventLoop, logger: BoundLogger,
        maxMessage: Int, leftover: [UInt8], onEnd: @escaping (WebSocketConnection) -> Void
    ) {
        self.transport = transport
        self.watch = watch
        self.loop = loop
        self.logger = logger
        self.parser = WebSocketFrameParser(maxMessage: maxMessage)
        self.leftover = leftover
        self.onEnd = onEnd
        self.readBuffer = .allocate(byteCount: 256 << 10, alignment: 16)
        self.iovecs = .allocate(capacity: Self.maxGather * 2)
    }

    deinit {
        readBuffer.deallocate()
        iovecs.deallocate()
    }

    /// Starts delivering messages to `handler`, and watching the socket (input, hang-up).
    public func start(_ handler: any WebSocketHandler) {
        loop.preconditionInEventLoop()
        self.handler = handler
        watch.waitForHangup { [self] in end(code: nil, reason: "the client hung up") }
        watch.readWhileOpen { [self] in readAvailable() }
        if !leftover.isEmpty {
            let bytes = leftover
            leftover = []
            bytes.withUnsafeBytes { parse($0) }
        }
        readAvailable()
    }

    /// Whether the connection still carries messages (not closing, not ended).
    public var isOpen: Bool {
        if case .open = phase { return true }
        return false
    }

    // MARK: Sending

    /// Queues `bytes` as they are (the handshake's answer, written by the server before any frame).
    func sendRaw(_ bytes: [UInt8]) {
        enqueue(Outgoing(head: bytes, body: nil, onSent: nil))
    }

    /// Sends one binary message: `head`, then `body` (not copied: unchanged until `onSent`).
    /// `onSent` runs once the kernel has all of it, or once it is dropped (the connection
    /// ended first).
    public func send(_ head: [UInt8], body: UnsafeRawBufferPointer? = nil, onSent: (() -> Void)? = nil) {
        send(WebSocketFrameHeader.binary, head, body: body, onSent: onSent)
    }

    /// Sends one text message (`text` must be what the protocol says: a notice beside the
    /// binary data, say).
    public func send(text: String) {
        send(WebSocketFrameHeader.text, Array(text.utf8), body: nil, onSent: nil)
    }

    private func send(_ opcode: UInt8, _ head: [UInt8], body: UnsafeRawBufferPointer?, onSent: (() -> Void)?) {
        loop.preconditionInEventLoop()
        guard case .open = phase else {
            onSent?()
            return
        }
        let length = head.count + (body?.count ?? 0)
        var frame: [UInt8] = []
        frame.reserveCapacity(10 + head.count)
        WebSocketFrameHeader.append(opcode: opcode, length: length, to: &frame)
        frame += head
        enqueue(Outgoing(head: frame, body: body, onSent: onSent))
    }

    /// Starts the closing handshake: a close frame with `code` and `reason`, then the
    /// connection ends when the client answers (or after two seconds).
    public func close(_ code: WebSocketCloseCode, reason: String) {
        loop.preconditionInEventLoop()
        guard case .open = phase else { return }
        let reason = String(decoding: Array(reason.utf8.prefix(120)), as: UTF8.self)
        phase = .closing(code: code.rawValue, reason: reason)
        enqueue(Outgoing(head: Self.closeFrame(code.rawValue, reason: reason), body: nil, onSent: nil))
        loop.schedule(after: 2000) { [weak self] in self?.end(code: code.rawValue, reason: reason) }
    }

    /// ``close(_:reason:)`` from any thread (the server stopping).
    public func closeFromElsewhere(_ code: WebSocketCloseCode, reason: String) {
        loop.execute { [self] in
            close(code, reason: reason)
        }
    }

    /// Stops reading: messages wait in the socket (and the client's TCP window closes) until
    /// ``resumeReading()``. For a handler that cannot take more now.
    public func pauseReading() {
        loop.preconditionInEventLoop()
        paused = true
    }

    public func resumeReading() {
        loop.preconditionInEventLoop()
        guard paused else { return }
        paused = false
        // Edge-triggered: what came meanwhile raised no new event.
        loop.execute { [self] in readAvailable() }
    }

    func enqueue(_ item: Outgoing) {
        outgoing.append(item)
        queuedBytes += item.count
        guard !waitingForRoom, !flushQueued else { return }
        // Sent at the end of this turn of the loop, with whatever else this turn queues (the
        // completions of one libusb event, say): one sendmsg for all of them.
        flushQueued = true
        loop.execute { [self] in
            flushQueued = false
            flush()
        }
    }

    var flushQueued = false

    func flush() {
        guard !flushing else { return }
        flushing = true
        defer { flushing = false }
        while firstOutgoing < outgoing.count {
            var filled = 0
            var skip = sentOfFirst
            var index = firstOutgoing
            while index < outgoing.count && filled + 2 <= iovecs.count {
                let item = outgoing[index]
                item.head.withUnsafeBytes { head in
                    if skip >= head.count {
                        skip -= head.count
                    } else if head.count > 0 {
                        iovecs[filled] = iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress! + skip), iov_len: head.count - skip)
                        skip = 0
                        filled += 1
                    }
                }
                if let body = item.body, body.count > 0 {
                    if skip >= body.count {
                        skip -= body.count
                    } else {
                        iovecs[filled] = iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress! + skip), iov_len: body.count - skip)
                        skip = 0
                        filled += 1
                    }
                }
                index += 1
            }
            // The heads' memory stays put: `outgoing` is not changed until the write returns.
            let written: Int?
            do {
                written = try transport.write(UnsafeMutableBufferPointer(rebasing: iovecs[0..<filled]))
            } catch {
                end(code: nil, reason: "the connection failed: \(error)")
                return
            }
            guard let written else {
                waitForRoom()
                return
            }
            advance(by: written)
        }
        do {
            if try !transport.flush() {
                waitForRoom()
                return
            }
        } catch {
            end(code: nil, reason: "the connection failed: \(error)")
            return
        }
        if case .closing = phase, outgoing.isEmpty, closeAnswered { end(code: closeCode, reason: closeReason) }
    }

    func advance(by written: Int) {
        var left = written
        queuedBytes -= written
        while left > 0 && firstOutgoing < outgoing.count {
            let remaining = outgoing[firstOutgoing].count - sentOfFirst
            if left < remaining {
                sentOfFirst += left
                return
            }
            left -= remaining
            sentOfFirst = 0
            let done = outgoing[firstOutgoing].onSent
            firstOutgoing += 1
            done?()
        }
        if firstOutgoing == outgoing.count {
            outgoing.removeAll(keepingCapacity: true)
            firstOutgoing = 0
        } else if firstOutgoing > 64 {
            outgoing.removeFirst(firstOutgoing)
            firstOutgoing = 0
        }
    }

    func waitForRoom() {
        guard !waitingForRoom else { return }
        waitingForRoom = true
        watch.waitForRoom { [weak self] in
            guard let self else { return }
            waitingForRoom = false
            flush()
        }
    }

    // MARK: Reading (WebSocketConnection+Reading.swift)

    /// The client's close frame came (in the closing phase), with what to end with.
    var closeAnswered = false
    var closeCode: UInt16?
    var closeReason = ""

    // MARK: The end

    /// Over, once: nothing more is read or sent, what waits is dropped (its senders told), the
    /// handler told, and the connection given back.
    func end(code: UInt16?, reason: String) {
        if case .ended = phase { return }
        phase = .ended
        watch.stopReading()
        watch.stopWaiting()
        let dropped = outgoing[firstOutgoing...].compactMap(\.onSent)
        outgoing.removeAll()
        firstOutgoing = 0
        queuedBytes = 0
        for onSent in dropped { onSent() }
        let handler = self.handler
        self.handler = nil
        handler?.connectionClosed(code: code, reason: reason)
        onEnd(self)
    }
}
