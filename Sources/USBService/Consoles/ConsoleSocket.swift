import Consoles
import HTTPServer

/// A console over a WebSocket (subprotocol `usbhttpd.console.1`): its output from an offset on
/// as binary messages, and, for the client that holds the writer, its binary messages typed.
/// Output waits while the client is slow (at most ``maxQueued`` bytes queued to the socket);
/// what the ring drops meanwhile is lost for this reader only, which a text message says
/// (`{"lost":N,"next":OFFSET}`) before the bytes after the gap. Input waits while the tty is
/// behind (reading the socket pauses). The console going away closes it with 1001.
///
/// Lives on the event loop, as the connection and the console do.
final class ConsoleSocket: WebSocketHandler, @unchecked Sendable {
    static let subprotocol = "usbhttpd.console.1"
    static let maxQueued = 256 << 10
    static let maxMessage = 64 << 10

    private let console: Console
    private let connection: WebSocketConnection
    /// The writer's name when this socket holds it, nil for a reader.
    private let writer: String?
    /// The writer's place among the device's streams: a lease granted over the interface cuts it.
    private let slot: StreamSlots.Slot?
    private var cursor: UInt64
    private var reader: UInt64?
    private var message: [UInt8] = []
    private var closed = false
    private var pumping = false
    private var pumpAgain = false

    init(console: Console, connection: WebSocketConnection, from: UInt64, writer: String?, slot: StreamSlots.Slot? = nil) {
        self.console = console
        self.connection = connection
        self.cursor = from
        self.writer = writer
        self.slot = slot
    }

    /// Starts sending output (on the loop, once open).
    func start() {
        console.loop.preconditionInEventLoop()
        reader = console.follow { [weak self] in self?.pump() }
        // The connection lets go of its handler (this socket) when it ends: the cycle through the
        // slot's handler ends with it.
        slot?.onCut { [connection, console] in
            console.execute { _ in connection.close(.policyViolation, reason: "a lease now covers this console") }
        }
        pump()
    }

    /// Sends what the ring has past the cursor while the socket has room (a send's `onSent`
    /// may call it again from inside: that only asks for one more round).
    private func pump() {
        guard !closed else { return }
        guard !pumping else {
            pumpAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        repeat {
            pumpAgain = false
            sendWhatFits()
        } while pumpAgain && !closed
    }

    private func sendWhatFits() {
        while connection.queuedBytes < Self.maxQueued {
            let (bytes, from, next) = console.ring.read(from: cursor, limit: 16 << 10)
            guard !bytes.isEmpty else { break }
            if from > cursor {
                // The ring dropped output this reader had not read: said before what follows.
                connection.send(text: #"{"lost":\#(from - cursor),"next":\#(from)}"#)
            }
            cursor = next
            connection.send(bytes, onSent: { [weak self] in self?.pump() })
        }
        if console.isGone && console.ring.end <= cursor {
            connection.close(.goingAway, reason: "the console went away")
        }
    }

    func messageStart() throws(WebSocketFailure) {
        guard writer != nil else {
            throw .policy("this socket reads only: it was opened with write=false or another client typed")
        }
        message.removeAll(keepingCapacity: true)
    }

    func messagePayload(_ piece: MaskedBytes) throws(WebSocketFailure) {
        guard message.count + piece.count <= Self.maxMessage else { throw .tooBig("at most \(Self.maxMessage) bytes a message") }
        let start = message.count
        message.append(contentsOf: repeatElement(0, count: piece.count))
        message.withUnsafeMutableBytes { piece.copy(to: $0.baseAddress!.advanced(by: start)) }
    }

    func messageEnd() throws(WebSocketFailure) {
        guard !message.isEmpty else { return }
        connection.pauseReading()
        console.type(message) { [weak self] typed in
            guard let self, !closed else { return }
            if typed { connection.resumeReading() }
        }
    }

    func connectionClosed(code: UInt16?, reason: String) {
        closed = true
        if let reader { console.unfollow(reader) }
        reader = nil
        if let writer { console.releaseWriter(writer) }
        slot?.release()
    }
}
