import Foundation
import Synchronization

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
        let (data, response) = try await Self.exchange(request, deadline: timeout + 15)
        guard let http = response as? HTTPURLResponse else { throw TestFailure("not an HTTP response") }
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name] = value }
        }
        return HTTPResult(status: http.statusCode, headers: fields, body: Array(data))
    }

    public func get(_ path: String) async throws -> HTTPResult { try await request("GET", path) }

    /// URLSession's data task with a deadline of its own: URLSession's timeout counts only
    /// idle time, and a test that waits for ever on a continuation never reaches its time
    /// limit. A task still running at the deadline is cancelled and the request fails.
    private static func exchange(_ request: URLRequest, deadline: TimeInterval) async throws -> (Data, URLResponse) {
        let once = Mutex<CheckedContinuation<(Data, URLResponse), any Error>?>(nil)
        return try await withCheckedThrowingContinuation { continuation in
            once.withLock { $0 = continuation }
            let finish: @Sendable (Result<(Data, URLResponse), any Error>) -> Void = { result in
                once.withLock { pending in
                    defer { pending = nil }
                    return pending
                }?.resume(with: result)
            }
            let task = session.dataTask(with: request) { data, response, error in
                if let data, let response {
                    finish(.success((data, response)))
                } else {
                    finish(.failure(error ?? TestFailure("no response")))
                }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + deadline) { [task] in
                let url = request.url?.absoluteString ?? ""
                finish(.failure(TestFailure("\(request.httpMethod ?? "GET") \(url): no answer within \(Int(deadline)) s")))
                task.cancel()
            }
            task.resume()
        }
    }

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
