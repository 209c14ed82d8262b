import Glibc

/// A resolved listen address (getaddrinfo), IPv4 or IPv6.
struct SocketAddress {
    private var storage = sockaddr_storage()
    private(set) var isIPv6 = false

    static func resolve(host: String, port: UInt16) throws(HTTPServerError) -> SocketAddress {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw .badAddress(host)
        }
        defer { freeaddrinfo(result) }
        var address = SocketAddress()
        address.isIPv6 = first.pointee.ai_family == AF_INET6
        withUnsafeMutableBytes(of: &address.storage) { target in
            target.copyMemory(
                from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return address
    }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>) -> T) -> T {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
    }
}
