import Foundation
import HTTPServer

/// Checks that an in-process answer is a problem+json document with `status` and `code`
/// (TestSupport's `problemMismatch` for an answer that did not cross the server, which adds
/// `X-Request-Id`); returns what is wrong, or nil.
func problemMismatch(_ response: HTTPResponse, status: Int, code: String) -> String? {
    let text = String(decoding: response.body, as: UTF8.self)
    guard response.status == status else { return "status \(response.status), expected \(status): \(text)" }
    guard response.headers["Content-Type"] == "application/problem+json" else {
        return "Content-Type \(response.headers["Content-Type"] ?? "none"), expected application/problem+json"
    }
    guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
        return "body is not a JSON object: \(text)"
    }
    for key in ["type", "title", "status", "detail", "code", "request_id"] where object[key] == nil {
        return "problem has no '\(key)': \(text)"
    }
    guard object["code"] as? String == code else { return "code \(object["code"] ?? "none"), expected \(code): \(text)" }
    return nil
}
