import FoundationEssentials
import HTTPServer
import USB

/// The answer to a finished transfer: raw bytes or JSON when it completed (a short read
/// included), a ``TransferProblem`` otherwise.
enum TransferAnswer {
    /// The JSON form of a completed transfer.
    struct Body: Encodable, Sendable {
        var status: String
        var actualLength: Int
        var requestedLength: Int
        var dataHex: String?
        var dataBase64: String?
    }

    /// Data that came IN: raw bytes, or JSON with hex and base64.
    static func received(
        _ result: TransferResult, requested: Int, json: Bool, context: @autoclosure () -> String
    ) throws -> HTTPResponse {
        try check(result, context: context())
        let headers = headers(result)
        guard json else { return .bytes(result.data, headers: headers) }
        return try .json(
            Body(
                status: result.status.rawValue, actualLength: result.actualLength, requestedLength: requested,
                dataHex: hex(result.data), dataBase64: Data(result.data).base64EncodedString()),
            headers: headers)
    }

    /// Data that went OUT: how much of it.
    static func sent(_ result: TransferResult, requested: Int, context: @autoclosure () -> String) throws -> HTTPResponse {
        try check(result, context: context())
        // Written directly (every bulk write answers this): the encoder's style, without it.
        var body: [UInt8] = []
        body.reserveCapacity(96)
        body += Array("{\n  \"actual_length\" : \(result.actualLength),\n  \"requested_length\" : \(requested),\n  \"status\" : ".utf8)
        JSON.appendString(result.status.rawValue, to: &body)
        body += Array("\n}\n".utf8)
        var headers = headers(result)
        headers.set("Content-Type", "application/json")
        return HTTPResponse(headers: headers, body: body)
    }

    private static func check(_ result: TransferResult, context: @autoclosure () -> String) throws(TransferProblem) {
        guard result.status == .completed else {
            throw .outcome(result.status, context: context(), actualLength: result.actualLength)
        }
    }

    private static func headers(_ result: TransferResult) -> HTTPHeaders {
        headers(status: result.status, actualLength: result.actualLength)
    }

    /// How a transfer ended and the bytes it moved, on every transfer answer, problems included.
    static func headers(status: TransferStatus, actualLength: Int) -> HTTPHeaders {
        ["X-USB-Transfer-Status": status.rawValue, "X-USB-Actual-Length": String(actualLength)]
    }
}
