import HTTPServer

/// A request's query arguments with the checks every route wants: no unknown names,
/// no repeats, values of the right form.
public struct QueryParameters: Sendable {
    public let pairs: [(name: String, value: String)]

    public init(_ pairs: [(name: String, value: String)]) { self.pairs = pairs }

    /// Throws for a name not in `names` or given twice.
    public func allow(only names: [String]) throws(RoutingProblem) {
        var seen: Set<String> = []
        for pair in pairs {
            guard names.contains(pair.name) else {
                throw .unknownParameter(name: pair.name, allowed: names)
            }
            guard seen.insert(pair.name).inserted else { throw .repeatedParameter(name: pair.name) }
        }
    }

    public func string(_ name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// An integer written in decimal or as 0x-prefixed hex, within `range`.
    public func integer(_ name: String, in range: ClosedRange<Int>) throws(RoutingProblem) -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Self.parseInteger(text), range.contains(value) else {
            throw .invalidParameter(
                name: name, value: text,
                expected: "an integer from \(range.lowerBound) to \(range.upperBound) (decimal or 0x hex)")
        }
        return value
    }

    /// Like ``integer(_:in:)``, but absent is an error.
    public func requiredInteger(_ name: String, in range: ClosedRange<Int>) throws(RoutingProblem) -> Int {
        guard let value = try integer(name, in: range) else {
            throw .missingParameter(
                name: name, expected: "an integer from \(range.lowerBound) to \(range.upperBound) (decimal or 0x hex)")
        }
        return value
    }

    /// One of `choices`, compared without regard to case.
    public func choice(_ name: String, among choices: [String]) throws(RoutingProblem) -> String? {
        guard let text = string(name) else { return nil }
        guard let choice = choices.first(where: { $0 == text.lowercased() }) else {
            throw .invalidParameter(name: name, value: text, expected: "one of \(choices.joined(separator: ", "))")
        }
        return choice
    }

    /// true/false (also 1/0, yes/no).
    public func boolean(_ name: String) throws(RoutingProblem) -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw .invalidParameter(name: name, value: text, expected: "true or false")
        }
    }

    /// Decimal, or hex with a 0x prefix.
    public static func parseInteger(_ text: String) -> Int? {
        let lower = text.lowercased()
        if lower.hasPrefix("0x") {
            let digits = lower.dropFirst(2)
            return digits.isEmpty ? nil : Int(digits, radix: 16)
        }
        guard !lower.isEmpty, lower.allSatisfy(\.isASCII) else { return nil }
        return Int(lower, radix: 10)
    }
}
