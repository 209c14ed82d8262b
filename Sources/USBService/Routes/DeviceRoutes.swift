import HTTPRouting
import Synchronization
import HTTPServer
import USB

/// `/v1/devices`: listing and describing devices.
struct DeviceRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        router.get("/v1/devices", requires: Access.read, now: listKnown) { try await list($0) }
        router.get("/v1/devices/{id}", requires: Access.read) { try await describe($0) }
        router.get("/v1/devices/{id}/descriptors/raw", requires: Access.read) { try await raw($0) }
    }

    /// Answered at once from the catalog's current list when it has one (no scan, no task), the
    /// whole list's JSON made once per change; nil when the list must be scanned first.
    func listKnown(_ request: RoutedRequest) throws -> HTTPResponse? {
        let filter = try DeviceFilter(query: request.query)
        guard let (generation, devices) = context.catalog.freshDevices() else { return nil }
        if request.request.query.isEmpty, let body = context.listingCache.body(generation: generation) {
            return HTTPResponse(headers: ["Content-Type": "application/json"], body: body)
        }
        let response = try HTTPResponse.json(DeviceList(devices.filter(filter.matches), node: context.node))
        if request.request.query.isEmpty { context.listingCache.keep(response.body, generation: generation) }
        return response
    }

    /// The list after a scan, when the catalog's current one was not trusted (``listKnown(_:)``
    /// came first and answered nil).
    func list(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query)
        let devices = try await context.devices()
        return try .json(DeviceList(devices.filter(filter.matches), node: context.node))
    }

    func describe(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try await context.deviceID(request)
        guard let device = try await context.usb("Reading device \(id)", device: id, { try await context.catalog.device(id: id) })
        else { throw await context.absent(id) }
        let active = device.configurations.first { $0.value == device.activeConfiguration }
        let drivers = active.map { Sysfs.interfaceDrivers(device: id, configuration: $0) } ?? [:]
        var details = DeviceDetails(device, node: context.node, drivers: drivers)
        details.consoles = try context.consoleModels(device: id)
        return try .json(details)
    }

    func raw(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try await context.deviceID(request)
        guard
            let bytes = try await context.usb(
                "Reading the descriptors of \(id)", device: id, { try await context.catalog.rawDescriptors(id: id) })
        else { throw await context.absent(id) }
        // The active configuration beside the bytes: what libusb's backend (clients/libusb)
        // needs for libusb_get_active_config_descriptor without a second request.
        var headers: HTTPHeaders = [:]
        if let device = try? await context.catalog.device(id: id) {
            headers.set("X-USB-Configuration", String(device.activeConfiguration ?? 0))
        }
        return .bytes(bytes, headers: headers)
    }
}

/// The JSON of the whole device list, kept for the list it was made from.
final class ListingCache: Sendable {
    private let kept = Mutex<(generation: Int, body: [UInt8])?>(nil)

    func body(generation: Int) -> [UInt8]? {
        kept.withLock { $0?.generation == generation ? $0?.body : nil }
    }

    func keep(_ body: [UInt8], generation: Int) {
        kept.withLock { $0 = (generation, body) }
    }
}
