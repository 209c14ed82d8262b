/// Checks that a response is a problem+json document with `status` and `code`; returns
/// a description of what is wrong, or nil.
public func problemMismatch(_ result: HTTPResult, status: Int, code: String) -> String? {
    guard result.status == status else { return "status \(result.status), expected \(status): \(result.text)" }
    guard result.contentType == "application/problem+json" else {
        return "Content-Type \(result.contentType ?? "none"), expected application/problem+json"
    }
    guard let object = try? result.object() else { return "body is not JSON: \(result.text)" }
    for key in ["type", "title", "status", "detail", "code", "request_id"] where object[key] == nil {
        return "problem has no '\(key)': \(result.text)"
    }
    guard object["code"] as? String == code else { return "code \(object["code"] ?? "none"), expected \(code)" }
    guard object["status"] as? Int == status else { return "status field \(object["status"] ?? "none")" }
    guard result.header("X-Request-Id") == object["request_id"] as? String else {
        return "X-Request-Id header and request_id differ"
    }
    return nil
}
