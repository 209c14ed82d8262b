import FoundationEssentials

/// A response: a status, header fields and a body held in memory, or a body streamed
/// while it is made (sent chunked).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// When set, the body is this stream and `body` is ignored.
    public var stream: (any HTTPBodyStream)?

    public init(status: Int = 200, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A chunked body read from `stream` as it is sent.
    public static func streaming(_ stream: any HTTPBodyStream, status: Int = 200, headers: HTTPHeaders = [:])
        -> HTTPResponse
    {
        var response = HTTPResponse(status: status, headers: headers)
        response.stream = stream
        return response
    }

    /// A JSON body (`application/json`), pretty-printed with sorted keys and snake_case names.
    public static func json(_ value: some Encodable, status: Int = 200, headers: HTTPHeaders = [:]) throws
        -> HTTPResponse
    {
        var headers = headers
        headers.set("Content-Type", "application/json")
        return HTTPResponse(status: status, headers: headers, body: try JSON.encode(value))
    }

    /// Raw bytes (`application/octet-stream`).
    public static func bytes(_ body: [UInt8], status: Int = 200, headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.set("Content-Type", "application/octet-stream")
        return HTTPResponse(status: status, headers: headers, body: body)
    }
}

/// The one JSON style of the API.
public enum JSON {
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var data = Array(try encoder.encode(value))
        data.append(0x0a)
        return data
    }

    /// The same style on one line, without the final newline (for Server-Sent Events' `data:`).
    public static func line(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return Array(try encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(bytes))
    }
}
