import HTTPRouting
import HTTPServer
import USB

/// `/v1/devices`: listing and describing devices.
struct DeviceRoutes: Sendable {
    let catalog: any DeviceCatalog

    func register(in router: inout Router) {
        router.get("/v1/devices") { try await list($0) }
        router.get("/v1/devices/{id}") { try await describe($0) }
        router.get("/v1/devices/{id}/descriptors/raw") { try await raw($0) }
    }

    func list(_ request: RoutedRequest) async throws -> HTTPResponse {
        let filter = try DeviceFilter(query: request.query)
        let devices = try await usb("Listing devices") { try await catalog.devices() }
        return try .json(DeviceList(devices: devices.filter(filter.matches).map(DeviceSummary.init)))
    }

    func describe(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try deviceID(request)
        guard let device = try await usb("Reading device \(id)", { try await catalog.device(id: id) }) else {
            throw USBProblem.deviceNotFound(id)
        }
        return try .json(DeviceDetails(device))
    }

    func raw(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let id = try deviceID(request)
        guard let bytes = try await usb("Reading the descriptors of \(id)", { try await catalog.rawDescriptors(id: id) })
        else { throw USBProblem.deviceNotFound(id) }
        return .bytes(bytes)
    }

    private func deviceID(_ request: RoutedRequest) throws(USBProblem) -> String {
        let id = request.parameters["id"] ?? ""
        guard DeviceID.isWellFormed(id) else { throw .invalidDeviceID(id) }
        return id
    }

    /// Runs a catalog call, turning libusb call errors into problems that say what was attempted.
    private func usb<T>(_ context: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as USBError {
            throw USBProblem.usb(error, context: context)
        }
    }
}
