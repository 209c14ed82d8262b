/// The bearer tokens the daemon accepts, read from a file: one per line,
///
///     <name> <scopes> <token>
///
/// e.g. `ci transfer 4f0c…` or `grafana read sha256:9b1e…`. `<scopes>` is one or more of
/// read, transfer, admin, comma-separated (each includes the ones before it). `<token>` is the
/// token itself (at least 16 characters) or `sha256:` and its SHA-256 in hex, so that the
/// file need not hold it. Lines starting with `#` are comments. Only digests are kept in memory.
public struct TokenFile: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let scope: Scope
        let digest: TokenDigest
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(line: Int, reason: String)
        case duplicateName(line: Int, String)
        case duplicateToken(line: Int)
        case empty

        public var description: String {
            switch self {
            case .malformed(let line, let reason): "token file line \(line): \(reason)"
            case .duplicateName(let line, let name): "token file line \(line): the name '\(name)' is used twice"
            case .duplicateToken(let line): "token file line \(line): the same token as an earlier line"
            case .empty: "the token file has no tokens"
            }
        }
    }

    public let entries: [Entry]

    /// Parses the file's text. Errors name the line, never the token.
    public init(text: String) throws(Failure) {
        var entries: [Entry] = []
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = offset + 1
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 3 else {
                throw .malformed(line: line, reason: "expected <name> <scopes> <token>, found \(fields.count) fields")
            }
            let name = String(fields[0])
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }) else {
                throw .malformed(line: line, reason: "a name is letters, digits and . _ - @")
            }
            var scopes: [Scope] = []
            for word in fields[1].split(separator: ",") {
                guard let scope = Scope(name: word) else {
                    throw .malformed(line: line, reason: "unknown scope '\(word)' (read, transfer, admin)")
                }
                scopes.append(scope)
            }
            guard let scope = scopes.max() else { throw .malformed(line: line, reason: "no scope") }
            let token = fields[2]
            let digest: TokenDigest
            if token.hasPrefix("sha256:") {
                guard let parsed = TokenDigest(hex: token.dropFirst(7)) else {
                    throw .malformed(line: line, reason: "sha256: must be followed by 64 hex digits")
                }
                digest = parsed
            } else {
                guard token.count >= 16 else {
                    throw .malformed(line: line, reason: "a token must be at least 16 characters")
                }
                digest = TokenDigest(of: Array(token.utf8))
            }
            if entries.contains(where: { $0.name == name }) { throw .duplicateName(line: line, name) }
            if entries.contains(where: { $0.digest.matches(digest) }) { throw .duplicateToken(line: line) }
            entries.append(Entry(name: name, scope: scope, digest: digest))
        }
        guard !entries.isEmpty else { throw .empty }
        self.entries = entries
    }

    /// The entry whose token is `token`, looking at every entry whatever matches.
    func entry(for token: some Collection<UInt8>) -> Entry? {
        let digest = TokenDigest(of: token)
        var found: Entry?
        for entry in entries where entry.digest.matches(digest) { found = entry }
        return found
    }
}
