import CGnuTLS

/// The SHA-256 of a bearer token (gnutls_hash_fast). Tokens are kept and compared only as
/// digests, and compared in constant time.
struct TokenDigest: Sendable, Equatable {
    let bytes: [UInt8]

    init(of token: some Collection<UInt8>) {
        var digest = [UInt8](repeating: 0, count: 32)
        let input = Array(token)
        _ = input.withUnsafeBytes { data in
            gnutls_hash_fast(GNUTLS_DIG_SHA256, data.baseAddress, data.count, &digest)
        }
        bytes = digest
    }

    /// A digest written as 64 hex digits (`sha256:…` in the token file); nil otherwise.
    init?(hex: some StringProtocol) {
        guard let bytes = USBService.bytes(fromHex: String(hex)), bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// Equal digests, looking at every byte whatever differs.
    func matches(_ other: TokenDigest) -> Bool {
        guard bytes.count == other.bytes.count else { return false }
        var difference: UInt8 = 0
        for index in bytes.indices { difference |= bytes[index] ^ other.bytes[index] }
        return difference == 0
    }

    /// Never the digest itself: logs and descriptions must not help anyone guess.
    static func == (a: TokenDigest, b: TokenDigest) -> Bool { a.matches(b) }
}
