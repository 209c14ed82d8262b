import Foundation
import HTTPServer
import Testing

@testable import USBService

/// One-use WebSocket tickets (`POST /v1/tickets`, offered as `usbhttpd.ticket.<ticket>`) and
/// `GET /v1/whoami`.
@Suite struct TicketTests {
    @Test func aTicketIsTakenOnceAndOnlyBeforeItExpires() {
        let book = TicketBook()
        let now = ContinuousClock.now
        let (id, ticket) = book.issue(name: "ci", scope: .transfer, now: now)
        #expect(id.count == 48 && ticket.scope == .transfer)
        #expect(book.redeem("nope", now: now) == nil)
        #expect(book.redeem(id, now: now)?.name == "ci")
        #expect(book.redeem(id, now: now) == nil, "used")
        let (late, _) = book.issue(name: "ci", scope: .transfer, now: now)
        #expect(book.redeem(late, now: now + TicketBook.lifetime) == nil, "expired")
        #expect(book.count == 0, "an expired one is dropped when tried")
    }

    @Test func aTokenHoldsABoundedNumberOfTickets() {
        let book = TicketBook()
        let first = book.issue(name: "ci", scope: .read).id
        for _ in 0..<TicketBook.perToken + 5 { _ = book.issue(name: "ci", scope: .read) }
        _ = book.issue(name: "ops", scope: .admin)
        #expect(book.count == TicketBook.perToken + 1)
        #expect(book.redeem(first) == nil, "the oldest made way")
    }

    @Test func aTicketIsOnlyReadFromAWebSocketHandshake() {
        let offer: HTTPHeaders = ["Upgrade": "websocket", "Sec-WebSocket-Protocol": "usbhttpd.console.1, usbhttpd.ticket.abc"]
        #expect(TicketBook.offered(in: HTTPRequest(method: "GET", path: "/", headers: offer)) == "abc")
        let plain: HTTPHeaders = ["Sec-WebSocket-Protocol": "usbhttpd.ticket.abc"]
        #expect(TicketBook.offered(in: HTTPRequest(method: "GET", path: "/", headers: plain)) == nil)
        let none: HTTPHeaders = ["Upgrade": "websocket", "Sec-WebSocket-Protocol": "usbhttpd.console.1"]
        #expect(TicketBook.offered(in: HTTPRequest(method: "GET", path: "/", headers: none)) == nil)
    }

    func json(_ response: HTTPResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    /// A handshake of a console's WebSocket, with what `headers` adds.
    func handshake(_ api: some HTTPResponder, _ path: String, _ headers: [(String, String)]) async -> HTTPResponse {
        var fields: HTTPHeaders = [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ]
        for (name, value) in headers { fields.add(name, value) }
        return await api.response(to: HTTPRequest(method: "GET", path: path, headers: fields))
    }

    @Test func aTicketStandsForItsTokenOnceInAHandshake() async throws {
        let api = API.router(catalog: FakeCatalog(list: [FakeCatalog.keyboard]), tokens: try TokenFile(text: AuthTests.file))
        func ticket(_ token: String) async -> String {
            let answer = await api.response(
                to: HTTPRequest(method: "POST", path: "/v1/tickets", headers: ["Authorization": "Bearer \(token)"]))
            #expect(answer.status == 201 && answer.headers["Cache-Control"] == "no-store")
            return json(answer)["subprotocol"] as? String ?? ""
        }
        let console = "/v1/devices/4-1/consoles/0/ws"
        let offered = await ticket("transfer-token-fedcba9876543210")
        #expect(offered.hasPrefix("usbhttpd.ticket."))
        // Admitted as 'ci': past authentication to the route's own answer (the fake has no consoles).
        let first = await handshake(api, console, [("Sec-WebSocket-Protocol", "usbhttpd.console.1, \(offered)")])
        #expect(first.status != 401 && first.status != 403, "\(first.status) \(json(first))")
        let again = await handshake(api, console, [("Sec-WebSocket-Protocol", "usbhttpd.console.1, \(offered)")])
        #expect(again.status == 401 && json(again)["code"] as? String == "invalid-ticket")
        #expect(again.headers["WWW-Authenticate"]?.contains("invalid_token") == true)
        // A read token's ticket opens only what the read token may.
        let reader = await ticket("read-token-0123456789abcdef")
        let urb = await handshake(api, "/v1/devices/4-1/urb", [("Sec-WebSocket-Protocol", "usbhttpd.urb.1, \(reader)")])
        #expect(urb.status == 403 && json(urb)["code"] as? String == "insufficient-scope")
        // Without the WebSocket handshake, a ticket is not read at all.
        let plain = await api.response(
            to: HTTPRequest(method: "GET", path: "/v1/devices", headers: ["Sec-WebSocket-Protocol": await ticket("read-token-0123456789abcdef")]))
        #expect(plain.status == 401 && json(plain)["code"] as? String == "unauthorized")
        // Nor by a route that is not a WebSocket, handshake or not (the listing, the events, whoami),
        // which leaves it unused: it still opens the console once.
        let spare = await ticket("transfer-token-fedcba9876543210")
        for path in ["/v1/devices", "/v1/events", "/v1/leases"] {
            let elsewhere = await handshake(api, path, [("Sec-WebSocket-Protocol", spare)])
            #expect(elsewhere.status == 401 && json(elsewhere)["code"] as? String == "unauthorized", "\(path)")
        }
        let who = json(await handshake(api, "/v1/whoami", [("Sec-WebSocket-Protocol", spare)]))
        #expect(who["name"] is NSNull, "whoami takes no ticket: anonymous")
        let later = await handshake(api, console, [("Sec-WebSocket-Protocol", "usbhttpd.console.1, \(spare)")])
        #expect(later.status != 401 && later.status != 403, "\(later.status) \(json(later))")
        // No ticket without a token.
        let anonymous = await api.response(to: HTTPRequest(method: "POST", path: "/v1/tickets"))
        #expect(anonymous.status == 401)
    }

    @Test func whoamiAnswersWithAndWithoutATokenAndWithoutTokens() async throws {
        let api = API.router(
            catalog: FakeCatalog(list: []), tokens: try TokenFile(text: AuthTests.file), node: "bench-7")
        let anonymous = json(await api.response(to: HTTPRequest(method: "GET", path: "/v1/whoami")))
        #expect(anonymous["tokens_required"] as? Bool == true && anonymous["scope"] is NSNull && anonymous["name"] is NSNull)
        #expect(anonymous["node"] as? String == "bench-7")
        let ops = json(
            await api.response(
                to: HTTPRequest(method: "GET", path: "/v1/whoami", headers: ["Authorization": "Bearer admin-token-aaaaaaaaaaaaaaaa"])))
        #expect(ops["name"] as? String == "ops" && ops["scope"] as? String == "admin")
        let wrong = await api.response(
            to: HTTPRequest(method: "GET", path: "/v1/whoami", headers: ["Authorization": "Bearer admin-token-aaaaaaaaaaaaaaaX"]))
        #expect(wrong.status == 401, "a token sent is checked")
        let open = json(await API.router(catalog: FakeCatalog(list: [])).response(to: HTTPRequest(method: "GET", path: "/v1/whoami")))
        #expect(open["tokens_required"] as? Bool == false && open["scope"] as? String == "admin")
    }
}
