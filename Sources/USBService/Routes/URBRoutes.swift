import HTTPRouting
import HTTPServer
import USB

/// `GET /v1/devices/{id}/urb`: the URB channel (docs/urb-channel.md), a WebSocket of subprotocol
/// `usbhttpd.urb.1` on the device's session. The upgrade is refused as any device request is
/// (its id, its instance, the token's scope, Host and Origin); once open, every message is
/// judged as the REST request it stands for would be (``URBChannel``).
struct URBRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        // The transfer scope: a GET that changes devices, so a page from another origin may not
        // open it (RequestOrigin), and HEAD is not served by it.
        // A channel is a connection (bounded by --max-connections and its per-client bound), not
        // a stream: its place among the device's streams only lets a lease granted over the
        // device cut its transfers.
        router.device(
            "GET", "/v1/devices/{id}/urb", requires: Access.webSocket(.transfer),
            DeviceRoute(
                query: [], lease: .byRoute(where: "URBChannel: each message, as its REST request"), slot: .watch,
                parse: { try WebSocketUpgrade.accept($0.request, subprotocol: URBMessage.subprotocol) }),
            context: context, open)
    }

    func open(_ call: DeviceCall, _ accept: String) async throws -> HTTPResponse {
        let (request, session, slot) = (call.request, call.session, call.slot!)
        let caller = context.caller(request)
        let limits = URBChannel.Limits(
            maxTimeout: context.limits.maxTimeoutMs, unboundedTimeouts: context.limits.allowUnboundedTimeouts)
        let context = self.context
        request.request.logger.info("URB channel opening", metadata: ["usb.device": "\(session.id)"])
        return .webSocket(
            WebSocketUpgrade(accept: accept, subprotocol: URBMessage.subprotocol, maxMessage: limits.maxMessage) {
                connection in
                let channel = URBChannel(
                    connection: connection, session: session, context: context, caller: caller, limits: limits, slot: slot)
                channel.start()
                return channel
            })
    }
}
