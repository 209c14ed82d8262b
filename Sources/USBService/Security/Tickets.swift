import HTTPRouting
import HTTPServer
import Synchronization

/// One-use tickets for WebSockets opened by a browser, which cannot send an `Authorization`
/// header with one: a page holding a token asks `POST /v1/tickets` (with the token, in its
/// header) and offers the ticket as a subprotocol, `usbhttpd.ticket.<ticket>`, beside the
/// route's own, so that the long-lived token is never in a URL (or a proxy's log of one).
///
/// A ticket stands for the token it was issued to (its name and scope), once, for
/// ``lifetime``; it is only taken in the handshake of a WebSocket route
/// (``Access/webSocket(_:)``). At most ``perToken`` are
/// outstanding for one token (an older one is dropped for a new one), so a client looping on
/// the route holds a bounded number.
final class TicketBook: Sendable {
    struct Ticket: Sendable {
        let name: String?
        let scope: Scope
        let expires: ContinuousClock.Instant
    }
    static let lifetime = Duration.seconds(30)
    static let perToken = 16
    static let subprotocolPrefix = "usbhttpd.ticket."

    private let state = Mutex<[(id: String, ticket: Ticket)]>([])

    /// A new ticket for the token `name` (nil without a token file) with `scope`.
    func issue(name: String?, scope: Scope, now: ContinuousClock.Instant = .now) -> (id: String, ticket: Ticket) {
        let issued = (id: Secret.hex(bytes: 24), ticket: Ticket(name: name, scope: scope, expires: now + Self.lifetime))
        state.withLock { tickets in
            tickets.removeAll { $0.ticket.expires <= now }
            if let oldest = tickets.firstIndex(where: { $0.ticket.name == name }),
                tickets.count(where: { $0.ticket.name == name }) >= Self.perToken
            {
                tickets.remove(at: oldest)
            }
            tickets.append(issued)
        }
        return issued
    }

    /// The ticket `id` stands for, taken (it cannot be used again); nil when it is unknown, used
    /// or expired.
    func redeem(_ id: String, now: ContinuousClock.Instant = .now) -> Ticket? {
        state.withLock { tickets in
            guard let index = tickets.firstIndex(where: { $0.id == id }) else { return nil }
            let ticket = tickets.remove(at: index).ticket
            return ticket.expires > now ? ticket : nil
        }
    }

    /// How many tickets are outstanding (for tests).
    var count: Int { state.withLock { $0.count } }

    /// The ticket a WebSocket handshake offers among its subprotocols, if any.
    static func offered(in request: HTTPRequest) -> String? {
        WebSocketUpgrade.offeredSubprotocols(request).first { $0.hasPrefix(subprotocolPrefix) }
            .map { String($0.dropFirst(subprotocolPrefix.count)) }
    }
}

/// The answer of `POST /v1/tickets`.
struct TicketModel: Encodable, Sendable {
    var ticket: String
    /// What to offer in `Sec-WebSocket-Protocol`, beside the route's subprotocol.
    var subprotocol: String
    var expiresInMs: Int
}
