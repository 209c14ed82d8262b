import HTTPRouting
import HTTPServer

/// The whole HTTP API of usbhttpd, as one responder.
public enum API {
    public static func router(catalog: any DeviceCatalog, limits: TransferLimits = TransferLimits()) -> Router {
        let context = RouteContext(catalog: catalog, limits: limits)
        var router = Router()
        DeviceRoutes(context: context).register(in: &router)
        InterfaceRoutes(context: context).register(in: &router)
        TransferRoutes(context: context).register(in: &router)
        StreamRoutes(context: context).register(in: &router)
        EventRoutes(context: context).register(in: &router)
        ServiceRoutes(context: context).register(in: &router)
        return router
    }
}
