import HTTPServer

/// Everything a streamed body has now, as text (its reads until it would wait).
func drain(_ stream: any HTTPBodyStream) -> String {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 256)
    while true {
        let result = buffer.withUnsafeMutableBytes { stream.read(into: $0) }
        guard case .bytes(let count) = result else { break }
        bytes += buffer.prefix(count)
    }
    return String(decoding: bytes, as: UTF8.self)
}
