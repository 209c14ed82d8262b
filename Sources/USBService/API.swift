import HTTPRouting
import HTTPServer
import Logging
import Prometheus

/// The whole HTTP API of usbhttpd, as one responder.
public enum API {
    /// `metrics` is what `/metrics` shows: the registry the program bootstrapped swift-metrics
    /// with (`MetricsSystem.bootstrap(PrometheusMetricsFactory(registry:))`). With `tokens`,
    /// every route but /healthz, /readyz and /openapi.yaml needs a bearer token with the
    /// route's scope (``RouteScopes``); with `rateLimit` too, each token may make that many
    /// requests a second (429 `rate-limited` past it).
    public static func router(
        catalog: any DeviceCatalog, limits: TransferLimits = TransferLimits(),
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), tokens: TokenFile? = nil,
        rateLimit: Int? = nil
    ) -> Router {
        let context = RouteContext(
            catalog: catalog, limits: limits,
            streamSlots: StreamSlots(perDevice: limits.maxStreamsPerDevice, total: limits.maxStreams),
            leases: LeaseTable(), logger: Logger(label: "usbhttpd.api"))
        var router = Router()
        DeviceRoutes(context: context).register(in: &router)
        InterfaceRoutes(context: context).register(in: &router)
        TransferRoutes(context: context).register(in: &router)
        StreamRoutes(context: context).register(in: &router)
        IsoRoutes(context: context).register(in: &router)
        EventRoutes(context: context).register(in: &router)
        ServiceRoutes(context: context, metrics: metrics).register(in: &router)
        LeaseRoutes(context: context).register(in: &router)
        if let tokens {
            router.routeGuard = BearerAuthenticator(
                tokens: tokens, rateLimiter: rateLimit.flatMap { $0 > 0 ? RateLimiter(perSecond: $0) : nil })
        }
        return router
    }
}
