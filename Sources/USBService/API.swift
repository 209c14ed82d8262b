import BenchPage
import Consoles
import HTTPRouting
import HTTPServer
import Logging
import Prometheus
import USB

/// The whole HTTP API of usbhttpd, as one responder.
public enum API {
    /// `metrics` is what `/metrics` shows: the registry the program bootstrapped swift-metrics
    /// with (`MetricsSystem.bootstrap(PrometheusMetricsFactory(registry:))`). Every request
    /// passes `origins` first (``RequestOrigins``: the `Host` it names, the page it comes from).
    /// With `tokens`, every route but /healthz, /readyz and /openapi.yaml needs a bearer token
    /// with the scope its route declares (``Access``); with `rateLimit`, each client (a token, or an
    /// address without tokens) may make that many requests a second (429 `rate-limited` past it).
    public static func router(
        catalog: any DeviceCatalog, limits: TransferLimits = TransferLimits(),
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), tokens: TokenFile? = nil,
        rateLimit: Int? = nil, origins: RequestOrigins = RequestOrigins(), policy: DevicePolicy = DevicePolicy(),
        node: String? = nil, consoles: ConsoleBook? = nil
    ) -> Router {
        let logger = Logger(label: "usbhttpd.api")
        // Leases, claims and streams changing, for the event stream's `activity` events.
        let activity = ActivityLog()
        let streamSlots = StreamSlots(
            perDevice: limits.maxStreamsPerDevice, perClientOnDevice: limits.maxClientStreamsPerDevice,
            perClient: limits.maxStreamsPerClient, total: limits.maxStreams,
            changed: { activity.note(.stream, device: $0, streams: $1, bytesPerSecond: $2) })
        let leases = LeaseTable(
            end: { lease, why in
                await LeaseRoutes.end(lease, why: why, catalog: catalog, streamSlots: streamSlots, logger: logger)
            },
            changed: { activity.note(.lease, device: $0) })
        catalog.afterClaimChange { activity.note(.claim, device: $0) }
        // A leased device that leaves keeps its lease for the lease's grace only.
        let changes = catalog.changes
        _ = changes.follow { [weak leases] in
            leases?.devicesPresent(Set(changes.snapshot().devices.map(\.id)))
        }
        var context = RouteContext(
            catalog: catalog, limits: limits, streamSlots: streamSlots, leases: leases, activity: activity, policy: policy,
            tokens: tokens, logger: logger, node: node)
        context.consoles = consoles
        var router = Router()
        DeviceRoutes(context: context).register(in: &router)
        InterfaceRoutes(context: context).register(in: &router)
        TransferRoutes(context: context).register(in: &router)
        StreamRoutes(context: context).register(in: &router)
        IsoRoutes(context: context).register(in: &router)
        EventRoutes(context: context).register(in: &router)
        ServiceRoutes(context: context, metrics: metrics).register(in: &router)
        LeaseRoutes(context: context).register(in: &router)
        URBRoutes(context: context).register(in: &router)
        ConsoleRoutes(context: context).register(in: &router)
        CallerRoutes(context: context).register(in: &router)
        // The bench page's files hold no data (the page asks the API for it, with its token).
        BenchPage.register(in: &router, requires: Access.open)
        router.guards = [
            OriginGuard(origins: origins),
            HeadGuard(),
            Authenticator(tokens: tokens, tickets: context.tickets, rateLimiter: rateLimit.flatMap { $0 > 0 ? RateLimiter(perSecond: $0) : nil }),
        ]
        if !origins.origins.isEmpty { router.crossOrigin = CrossOrigin(origins: origins) }
        return router
    }
}
