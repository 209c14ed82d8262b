import HTTPServer
import Logging
import Synchronization
import Testing

/// The cheap parts of every request's path: problem bodies written without an encoder, request
/// ids without a system call, header look-ups without new strings, log metadata read only
/// when a line is logged.
@Suite struct RequestPathTests {
    @Test(arguments: [
        "plain", "quote \" and backslash \\ and slash /", "lines\nand\ttabs\r", "control \u{01}\u{1f}",
        "unicode é ☃ 🙂", "",
    ])
    func aProblemIsWrittenAsTheEncoderWritesIt(text: String) throws {
        let document = ProblemDocument(
            type: "urn:usbhttpd:problem:x", title: "Title \(text)", status: 404, detail: text, code: "not-found",
            instance: "/a/\(text)", requestId: "0123456789abcdef")
        #expect(document.json == (try JSON.encode(document)))
    }

    @Test func requestIDsAreUniqueHexWithoutRepeats() {
        var seen = Set<String>()
        for _ in 0..<20_000 {
            let id = RequestID.make()
            #expect(id.utf8.count == 16 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            seen.insert(id)
        }
        #expect(seen.count == 20_000)
        #expect(RequestID.accept("client-id_1.2") == "client-id_1.2")
        #expect(RequestID.accept("bad id\n") != "bad id\n")
    }

    @Test func headerNamesCompareWithoutCase() {
        var headers: HTTPHeaders = ["Content-Type": "a", "X-Request-Id": "b"]
        #expect(headers["content-type"] == "a" && headers["CONTENT-TYPE"] == "a" && headers["x-request-ID"] == "b")
        #expect(headers["Content-Typ"] == nil && headers["Content-Typf"] == nil)
        // Not letters: '[' (0x5b) and '{' (0x7b) differ only in bit 0x20 too.
        #expect(HTTPHeaders([("a[", "1")])["a{"] == nil)
        headers.set("CONTENT-type", "c")
        #expect(headers.fields.count == 2 && headers["Content-Type"] == "c")
    }

    @Test func linesInARequestsTaskCarryItsIDAndAnnotations() async {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in Capture(lines: lines, metadataProvider: RequestLogContext.metadataProvider) }
        let annotations = RequestAnnotations(["http.route": "/x/{id}"])
        await RequestLogContext.$current.withValue(RequestLogContext(id: "req-1", annotations: annotations)) {
            logger.info("inside")
        }
        logger.info("outside")
        let captured = lines.storage.withLock { $0 }
        #expect(captured.count == 2)
        #expect(captured.first?["request.id"] == "req-1" && captured.first?["http.route"] == "/x/{id}")
        #expect(captured.last?["request.id"] == nil)
    }

    final class Lines: Sendable {
        let storage = Mutex<[Logger.Metadata]>([])
    }

    /// Keeps each line's metadata, the provider's included, as a log handler does when it logs.
    struct Capture: LogHandler {
        let lines: Lines
        var metadataProvider: Logger.MetadataProvider?
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(
            level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
            file: String, function: String, line: UInt
        ) {
            var all = metadata
            all.merge(metadataProvider?.get() ?? [:]) { $1 }
            all.merge(explicit ?? [:]) { $1 }
            lines.storage.withLock { $0.append(all) }
        }
    }
}
