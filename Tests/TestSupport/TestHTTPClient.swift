import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What a test got back from an HTTP request.
public struct HTTPResult: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: [UInt8]

    /// A header by name, case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }

    public var contentType: String? { header("Content-Type") }

    /// The body as a JSON object.
    public func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestFailure("body is not a JSON object: \(String(decoding: body, as: UTF8.self))")
        }
        return object
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A plain HTTP client for tests (URLSession, no cache, no cookies).
public struct TestHTTPClient: Sendable {
    public let base: String

    public init(base: String) { self.base = base }

    public init(port: Int) { self.base = "http://127.0.0.1:\(port)" }

    public func request(
        _ method: String = "GET", _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:],
        timeout: TimeInterval = 60
    ) async throws -> HTTPResult {
        guard let url = URL(string: base + path) else { throw TestFailure("bad URL \(base + path)") }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body) }
        let (data, response) = try await Self.session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw TestFailure("not an HTTP response") }
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name] = value }
        }
        return HTTPResult(status: http.statusCode, headers: fields, body: Array(data))
    }

    public func get(_ path: String) async throws -> HTTPResult { try await request("GET", path) }

    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        return URLSession(configuration: configuration)
    }()
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
