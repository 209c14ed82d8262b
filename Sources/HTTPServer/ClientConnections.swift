import LinuxSystem
import Synchronization

/// The per-client connection cap (`perClientConnectionLimit`), counted here rather than by
/// libmicrohttpd's per-address count: a client is its address, and on loopback its address and
/// its local user, which the kernel's TCP table names (``SocketOwner``). Every program on the
/// machine comes from 127.0.0.1; counted by address alone, one program holding its 64
/// connections locked every other user's programs out of the daemon (issue 24, class 4).
///
/// libmicrohttpd asks ``admit(_:)`` before it takes a connection (its accept-policy callback)
/// and reports the connection started and closed (its notify-connection callback), on the loop
/// in practice; the stop of the server reports the closes from elsewhere, hence the lock.
final class ClientConnections: Sendable {
    let limit: Int
    /// Who owns a loopback peer's socket, nil when not known (injected by tests).
    private let owner: @Sendable (SocketOwner.Endpoint) -> UInt32?
    private let state = Mutex(State())

    private struct State {
        var held: [String: Int] = [:]
        /// Connections admitted and not started yet, by the peer's end, with when: counted
        /// against their client meanwhile (a connection libmicrohttpd drops before it starts is
        /// forgotten after a while).
        var pending: [SocketOwner.Endpoint: (client: String, at: ContinuousClock.Instant)] = [:]
    }

    init(limit: Int, owner: @escaping @Sendable (SocketOwner.Endpoint) -> UInt32?) {
        self.limit = limit
        self.owner = owner
    }

    /// The client a peer counts as: "address A", or on loopback "address A user U".
    func client(of peer: SocketOwner.Endpoint) -> String {
        let address = Self.text(peer.address)
        guard peer.isLoopback, let user = owner(peer) else { return "address \(address)" }
        return "address \(address) user \(user)"
    }

    /// Whether a new connection from `peer` may come in: its client holds fewer than the limit.
    func admit(_ peer: SocketOwner.Endpoint) -> Bool {
        guard limit > 0 else { return true }
        let client = client(of: peer)
        let now = ContinuousClock.now
        return state.withLock { state in
            state.pending = state.pending.filter { now - $0.value.at < .seconds(10) }
            let waiting = state.pending.values.count { $0.client == client }
            guard (state.held[client] ?? 0) + waiting < limit else { return false }
            state.pending[peer] = (client, now)
            return true
        }
    }

    /// A connection from `peer` started: its client from then on, to give to ``closed(_:)``.
    func started(_ peer: SocketOwner.Endpoint) -> String? {
        guard limit > 0 else { return nil }
        let known = state.withLock { $0.pending.removeValue(forKey: peer)?.client }
        let client = known ?? client(of: peer)
        state.withLock { $0.held[client, default: 0] += 1 }
        return client
    }

    /// A connection of `client` closed.
    func closed(_ client: String) {
        state.withLock { state in
            let left = (state.held[client] ?? 0) - 1
            state.held[client] = left > 0 ? left : nil
        }
    }

    /// Connections `client` holds now.
    func held(by client: String) -> Int { state.withLock { $0.held[client] ?? 0 } }

    static func text(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for at in stride(from: 0, to: address.count, by: 2) { groups.append(String(UInt16(address[at]) << 8 | UInt16(address[at + 1]), radix: 16)) }
        return groups.joined(separator: ":")
    }
}
