import HTTPRouting
import HTTPServer

/// The whole HTTP API of usbhttpd, as one responder.
public enum API {
    public static func router(catalog: any DeviceCatalog) -> Router {
        var router = Router()
        DeviceRoutes(catalog: catalog).register(in: &router)
        return router
    }
}
