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
        match(parts: PathTemplate.parts(path))
    }

    /// ``match(_:)`` for a path already cut by ``parts(_:)``: a router cuts each request's path
    /// once, not once per route it tries.
    func match(parts: [Substring]) -> [String: String]? {
        guard parts.count == segments.count else { return nil }
        for (segment, part) in zip(segments, parts) {
            if case .literal(let literal) = segment, literal != part { return nil }
        }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            guard case .parameter(let name) = segment else { continue }
            guard !part.isEmpty else { return nil }
            parameters[name] = String(part)
        }
        return parameters
    }

    /// A path's segments between slashes, without the leading slash and one trailing slash.
    static func parts(_ path: String) -> [Substring] {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.first == "" { parts.removeFirst() }
        if parts.count > 0 && parts.last == "" { parts.removeLast() }
        return parts
    }

    static func split(_ path: String) -> [String] {
        parts(path).map(String.init)
    }
}
