/// Unguessable text: lease ids and tokens, WebSocket tickets.
enum Secret {
    /// `bytes` random bytes (the system's generator: getrandom(2)) in hex.
    static func hex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return USBService.hex((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}
