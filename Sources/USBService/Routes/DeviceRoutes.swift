import HTTPRouting
import HTTPServer
import USB

/// `/v1/devices`: listing and describing devices.
struct DeviceRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        router.get("/v1/devices") { try await list($0) }
        router.get("/v1/devices/{id}") { try await describe($0) }
        router.get("/v1/devices/{id}/descriptors/raw") { try await raw($0) }
    }

    func list(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query)
        let devices = try await context.devices()
        return try .json(DeviceList(devices: devices.filter(filter.matches).map(DeviceSummary.init)))
    }

    func describe(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try await context.deviceID(request)
        guard let device = try await context.usb("Reading device \(id)", device: id, { try await context.catalog.device(id: id) })
        else { throw await context.absent(id) }
        return try .json(DeviceDetails(device))
    }

    func raw(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try await context.deviceID(request)
        guard
            let bytes = try await context.usb(
                "Reading the descriptors of \(id)", device: id, { try await context.catalog.rawDescriptors(id: id) })
        else { throw await context.absent(id) }
        return .bytes(bytes)
    }
}
