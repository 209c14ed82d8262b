import Testing
import TestSupport

@testable import HTTPServer

/// The frame parser and the handshake, without I/O: every frame a client may send, split at
/// every byte, and everything it may not, each closing with its code; thousands of random
/// byte strings that must never trap.
@Suite struct WebSocketFrameTests {
    /// What a parse of `bytes` (given in pieces of `piece` bytes) made, as text, or the failure.
    static func parse(_ bytes: [UInt8], piece: Int = .max, maxMessage: Int = 1 << 20) -> (events: [String], failure: WebSocketFailure?) {
        var parser = WebSocketFrameParser(maxMessage: maxMessage)
        var events: [String] = []
        var message: [UInt8] = []
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + max(piece, 1))
            let chunk = Array(bytes[offset..<end])
            var failure: WebSocketFailure?
            chunk.withUnsafeBytes { raw in
                do throws(WebSocketFailure) {
                    try parser.parse(raw) { (event) throws(WebSocketFailure) in
                        switch event {
                        case .messageStart: message = []
                        case .payload(let piece): message += piece.unmasked()
                        case .messageEnd: events.append("message \(message)")
                        case .ping(let payload): events.append("ping \(payload)")
                        case .pong: events.append("pong")
                        case .close(let code, let reason): events.append("close \(code.map(String.init) ?? "none") \(reason)")
                        }
                    }
                } catch {
                    failure = error
                }
            }
            if let failure { return (events, failure) }
            offset = end
        } while offset < bytes.count
        return (events, nil)
    }

    static func frame(_ opcode: UInt8, _ payload: [UInt8], _ fin: Bool, _ masked: Bool) -> [UInt8] {
        TestWebSocket.frame(opcode, payload, fin: fin, masked: masked)
    }

    @Test func framesSplitAtEveryByteGiveTheSameMessages() {
        let payload = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let big = (0..<70000).map { UInt8(truncatingIfNeeded: $0) }
        let bytes = Self.frame(2, [1, 2, 3], true, true)
            + Self.frame(2, Array(payload[..<100]), false, true) + Self.frame(9, [9, 9], true, true)
            + Self.frame(0, Array(payload[100...]), true, true) + Self.frame(2, [], true, true)
            + Self.frame(10, [], true, true) + Self.frame(2, big, true, true)
            + Self.frame(8, [0x03, 0xe8] + Array("bye".utf8), true, true)
        let expected = [
            "message [1, 2, 3]", "ping [9, 9]", "message \(payload)", "message []", "pong", "message \(big)", "close 1000 bye",
        ]
        for piece in [1, 2, 3, 5, 7, 13, 64, 1000, .max] {
            let (events, failure) = Self.parse(bytes, piece: piece)
            #expect(failure == nil, "piece \(piece)")
            #expect(events == expected, "piece \(piece)")
        }
    }

    @Test(arguments: [
        (TestWebSocket.frame(2, [1], fin: true, masked: false), WebSocketCloseCode.protocolError),  // unmasked
        ([0xc2, 0x80, 0, 0, 0, 0], .protocolError),  // RSV1 without an extension
        (TestWebSocket.frame(3, [1], fin: true, masked: true), .protocolError),  // reserved opcode
        (TestWebSocket.frame(1, Array("hi".utf8), fin: true, masked: true), .unsupportedData),  // text
        (TestWebSocket.frame(9, [1], fin: false, masked: true), .protocolError),  // fragmented ping
        (TestWebSocket.frame(9, [UInt8](repeating: 0, count: 126), fin: true, masked: true), .protocolError),  // ping over 125
        (TestWebSocket.frame(0, [1], fin: true, masked: true), .protocolError),  // continuation first
        (TestWebSocket.frame(2, [1], fin: false, masked: true) + TestWebSocket.frame(2, [2], fin: true, masked: true), .protocolError),
        (TestWebSocket.frame(2, [UInt8](repeating: 0, count: 2000), fin: true, masked: true), .tooBig),
        (TestWebSocket.frame(8, [3], fin: true, masked: true), .protocolError),  // close of one byte
        (TestWebSocket.frame(8, [0x03, 0xed], fin: true, masked: true), .protocolError),  // close code 1005
        (TestWebSocket.frame(8, [0x03, 0xe8, 0xff], fin: true, masked: true), .invalidData),  // reason not UTF-8
        ([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], .protocolError),  // 64-bit length with its top bit
    ])
    func whatAClientMayNotSendFailsWithItsCode(bytes: [UInt8], code: WebSocketCloseCode) {
        #expect(Self.parse(bytes, maxMessage: 1024).failure?.code == code)
        #expect(Self.parse(bytes, piece: 1, maxMessage: 1024).failure?.code == code)
    }

    @Test func aMessageOverTheLimitFailsEvenInManyFrames() {
        let bytes = (0..<10).flatMap { index in Self.frame(index == 0 ? 2 : 0, [UInt8](repeating: 1, count: 200), index == 9, true) }
        #expect(Self.parse(bytes, maxMessage: 1000).failure?.code == .tooBig)
        #expect(Self.parse(bytes, maxMessage: 2000).failure == nil)
    }

    @Test func randomBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<4000 {
            let count = Int.random(in: 0...64, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half of them start like a real frame, so that the parser gets past the first byte.
            if round % 2 == 0, !bytes.isEmpty { bytes[0] = [0x82, 0x02, 0x80, 0x88, 0x89, 0x8a][round % 6] }
            if round % 4 == 0, bytes.count > 1 { bytes[1] |= 0x80 }
            _ = Self.parse(bytes, piece: Int.random(in: 1...8, using: &generator), maxMessage: 4096)
        }
    }

    @Test func unmaskingAtAnyPhaseAndLength() {
        for length in 0..<40 {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 5) }
            let framed = Self.frame(2, payload, true, true)
            for piece in 1...9 {
                #expect(Self.parse(framed, piece: piece).events == ["message \(payload)"], "\(length)/\(piece)")
            }
        }
    }

    @Test func theHandshakeAnswersTheRFCsExample() {
        #expect(WebSocketUpgrade.acceptValue(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test(arguments: [
        ([("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Sec-WebSocket-Version", "13"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "chat, usbhttpd.urb.1")], nil),
        ([("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
          ("Sec-WebSocket-Protocol", "usbhttpd.urb.1")], WebSocketHandshakeProblem.upgradeRequired),
        ([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "8"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "usbhttpd.urb.1")], .version),
        ([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
          ("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Protocol", "usbhttpd.urb.1")], .key),
        ([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "chat")],
         .subprotocol(wanted: "usbhttpd.urb.1")),
    ])
    func theHandshakeIsChecked(headers: [(String, String)], problem: WebSocketHandshakeProblem?) {
        let request = HTTPRequest(method: "GET", path: "/ws", headers: HTTPHeaders(headers.map { (name: $0.0, value: $0.1) }))
        do {
            let accept = try WebSocketUpgrade.accept(request, subprotocol: "usbhttpd.urb.1")
            #expect(problem == nil)
            #expect(accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        } catch {
            #expect(error == problem)
        }
    }
}
