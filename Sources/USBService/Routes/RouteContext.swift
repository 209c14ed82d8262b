import HTTPRouting
import HTTPServer
import USB

/// What every device route needs: where devices come from, the transfer limits, and the
/// one way path parameters are read and USB errors become problems.
struct RouteContext: Sendable {
    let catalog: any DeviceCatalog
    let limits: TransferLimits

    /// The `{id}` path parameter, checked for form.
    func deviceID(_ request: RoutedRequest) throws(USBProblem) -> String {
        let id = request.parameters["id"] ?? ""
        guard DeviceID.isWellFormed(id) else { throw .invalidDeviceID(id) }
        return id
    }

    /// A byte-sized path parameter (`{interface}`, `{endpoint}`), decimal or 0x hex.
    func byte(_ request: RoutedRequest, _ name: String) throws(RoutingProblem) -> UInt8 {
        let text = request.parameters[name] ?? ""
        guard let value = QueryParameters.parseInteger(text), (0...0xff).contains(value) else {
            throw .invalidParameter(name: name, value: text, expected: "an integer from 0 to 255 (decimal or 0x hex)")
        }
        return UInt8(value)
    }

    /// The open session of the device `{id}`; 404 when absent, 410 when it went away.
    func session(_ request: RoutedRequest) async throws -> DeviceSession {
        let id = try deviceID(request)
        guard let session = try await usb("Opening device \(id)", device: id, { try await catalog.session(id: id) })
        else { throw USBProblem.deviceNotFound(id) }
        return session
    }

    /// Runs `body`, turning libusb call errors and device-state errors into problems that say
    /// what was attempted.
    func usb<T>(_ context: String, device: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as USBError {
            throw USBProblem.usb(error, context: context)
        } catch let error as DeviceStateError {
            throw DeviceStateProblem(error, device: device)
        }
    }
}
