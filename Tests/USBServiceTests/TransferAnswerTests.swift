import HTTPServer
import Testing
import USB

@testable import USBService

@Suite struct TransferAnswerTests {
    @Test func aSentAnswerIsWrittenAsTheEncoderWritesIt() throws {
        let response = try TransferAnswer.sent(
            TransferResult(status: .completed, actualLength: 3_145_735), requested: 3_145_735, context: "x")
        let encoded = try JSON.encode(TransferAnswer.Body(status: "completed", actualLength: 3_145_735, requestedLength: 3_145_735))
        #expect(response.body == encoded)
        #expect(response.headers["Content-Type"] == "application/json" && response.headers["X-USB-Actual-Length"] == "3145735")
    }
}
