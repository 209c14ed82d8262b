import HTTPRouting

/// The packets an isochronous request asks for, from its query: `packet_lengths=a,b,…`, or
/// `packet_size` (default: what the endpoint carries per interval) with `packets` for IN or
/// the body's length for OUT (the last packet takes what is left). Sizes and counts are
/// checked against the endpoint later, by the device (``DeviceState/checkIsoPackets(_:for:)``).
enum IsoPacketQuery {
    /// The packet lengths of an IN transfer.
    static func inLengths(_ query: QueryParameters, defaultPacketSize: Int) throws(RoutingProblem) -> [Int] {
        if let lengths = try explicitLengths(query, excluding: ["packet_size", "packets"]) { return lengths }
        let size = try query.integer("packet_size", in: 1...65535) ?? defaultPacketSize
        let count = try query.requiredInteger("packets", in: 1...128)
        return Array(repeating: size, count: count)
    }

    /// The packet lengths of an OUT transfer of `count` bytes.
    static func outLengths(_ query: QueryParameters, count: Int, defaultPacketSize: Int) throws(RoutingProblem) -> [Int] {
        if let lengths = try explicitLengths(query, excluding: ["packet_size"]) {
            guard lengths.reduce(0, +) == count else {
                throw .invalidParameter(
                    name: "packet_lengths", value: query.string("packet_lengths") ?? "",
                    expected: "lengths that add up to the body's \(count) bytes")
            }
            return lengths
        }
        let size = try query.integer("packet_size", in: 1...65535) ?? defaultPacketSize
        guard count > 0 else {
            throw .invalidParameter(name: "body", value: "0 bytes", expected: "at least one byte to send")
        }
        var lengths = Array(repeating: size, count: count / size)
        if count % size != 0 { lengths.append(count % size) }
        return lengths
    }

    private static func explicitLengths(_ query: QueryParameters, excluding others: [String]) throws(RoutingProblem) -> [Int]? {
        guard let text = query.string("packet_lengths") else { return nil }
        if let other = others.first(where: { query.string($0) != nil }) {
            throw .conflictingParameters(["packet_lengths", other])
        }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let lengths = parts.compactMap { QueryParameters.parseInteger(String($0)) }.filter { (0...65535).contains($0) }
        guard lengths.count == parts.count, (1...128).contains(lengths.count) else {
            throw .invalidParameter(
                name: "packet_lengths", value: text, expected: "1 to 128 comma-separated packet lengths of 0 to 65535 bytes")
        }
        return lengths
    }
}
