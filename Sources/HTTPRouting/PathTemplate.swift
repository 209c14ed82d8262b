/// A path with `{name}` segments, e.g. `/v1/devices/{id}/descriptors/raw`.
public struct PathTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    let segments: [Segment]
    public let description: String

    public init(_ template: String) {
        self.description = template
        self.segments = PathTemplate.split(template).map { part in
            if part.hasPrefix("{") && part.hasSuffix("}") { .parameter(String(part.dropFirst().dropLast())) }
            else { .literal(part) }
        }
    }

    /// The parameters when `path` matches, else nil. A trailing slash is ignored.
    public func match(_ path: String) -> [String: String]? {
        let parts = PathTemplate.split(path)
        guard parts.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal): guard literal == part else { return nil }
            case .parameter(let name):
                guard !part.isEmpty else { return nil }
                parameters[name] = part
            }
        }
        return parameters
    }

    static func split(_ path: String) -> [String] {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "" { parts.removeFirst() }
        if parts.count > 0 && parts.last == "" { parts.removeLast() }
        return parts
    }
}
