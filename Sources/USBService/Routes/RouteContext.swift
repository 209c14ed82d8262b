import Consoles
import HTTPRouting
import Logging
import HTTPServer
import USB

/// What every device route needs: where devices come from, the transfer limits, and the
/// one way path parameters are read and USB errors become problems.
struct RouteContext: Sendable {
    let catalog: any DeviceCatalog
    let limits: TransferLimits
    /// The streams open now (bounded by `limits`).
    let streamSlots: StreamSlots
    let leases: LeaseTable
    /// Leases, claims and streams changing: told to the event stream's `activity` events.
    let activity: ActivityLog
    /// Which interfaces of a shown device may be used (``DevicePolicy/access(toInterfaceClass:subclass:protocol:)``).
    let policy: DevicePolicy
    /// The token file, for the scope a request holds (nil: no tokens, every request may all).
    let tokens: TokenFile?
    let logger: Logger
    /// This daemon's node name (--node-name), shown in device summaries.
    let node: String?
    /// The serial consoles (nil: none are followed, as in tests without a loop of their own).
    var consoles: ConsoleBook? = nil
    /// The whole device list's JSON, while the list does not change.
    let listingCache = ListingCache()
    /// One-use WebSocket tickets (`POST /v1/tickets`), taken by the ``Authenticator``.
    let tickets = TicketBook()

    /// The `{id}` path parameter: a device id checked for form, or `serial:<serial number>`
    /// resolved to the id of the one present device with that serial number.
    func deviceID(_ request: RoutedRequest) async throws -> String {
        let id = request.parameters["id"] ?? ""
        if id.hasPrefix(DeviceID.serialPrefix) {
            let serial = String(id.dropFirst(DeviceID.serialPrefix.count))
            guard !serial.isEmpty else { throw USBProblem.invalidDeviceID(id) }
            let matches = try await devices()
                .filter { $0.serial == serial }.map(\.id)
            guard let first = matches.first else { throw USBProblem.serialNotFound(serial) }
            guard matches.count == 1 else { throw USBProblem.ambiguousSerial(serial, ids: matches) }
            return first
        }
        guard PortPath(id) != nil else { throw USBProblem.invalidDeviceID(id) }
        return id
    }

    /// 423 `lease-held` when another client's lease covers what this request changes: one
    /// interface of `device`, or (nil) the whole device. A request acts under a lease by
    /// sending its token in `X-USB-Lease`.
    func checkLease(_ request: RoutedRequest, device: String, interface: UInt8?) throws {
        try checkLease(caller(request), device: device, interface: interface)
    }

    /// Who a request counts as for per-client bounds: its token's name, or its address.
    func client(_ request: RoutedRequest) -> String {
        request.principal.map { "token \($0)" } ?? "address \(request.request.remoteAddress)"
    }

    /// Every device present now (a fresh scan, which also records what changed since the last).
    func devices() async throws -> [USBDeviceInfo] {
        try await usb("Listing devices", device: "") { try await catalog.devices() }
    }

    /// The problem for a device that is not present: 410 if it was and went away, else 404.
    func absent(_ id: String) async -> USBProblem {
        if let time = await catalog.removedAt(id: id) { return .deviceRemoved(id, time: time) }
        return .deviceNotFound(id)
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
        let expected = try expectedAddress(request)
        let session: DeviceSession
        // An id with an open session is well formed: no need to check it or to ask the host.
        if let open = request.parameters["id"].flatMap(catalog.openSession(id:)) {
            session = open
        } else {
            let id = try await deviceID(request)
            guard let opened = try await usb("Opening device \(id)", device: id, { try await catalog.session(id: id) })
            else { throw await absent(id) }
            session = opened
        }
        if let expected, expected != session.address {
            throw USBProblem.reenumerated(session.id, expected: expected, now: session.address)
        }
        return session
    }

    /// The device address a request names in `X-USB-Device-Address` (the `address` of
    /// GET /v1/devices): the instance of the device it means, so that a device that enumerated
    /// again behind the same id is not driven by a client that does not know it.
    func expectedAddress(_ request: RoutedRequest) throws -> UInt8? {
        guard let text = request.request.headers["X-USB-Device-Address"] else { return nil }
        // Digits only, as openapi.yaml's pattern says (UInt8("+5") would take a sign).
        guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt8(text), (1...127).contains(value)
        else {
            throw USBProblem.invalidAddress(String(text.prefix(32)))
        }
        return value
    }

    /// Runs `body`, turning libusb call errors and device-state errors into problems that say
    /// what was attempted (`context`, made only then).
    func usb<T>(_ context: @autoclosure () -> String, device: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as USBError {
            throw USBProblem.usb(error, context: context())
        } catch let error as DeviceStateError {
            throw DeviceStateProblem(error, device: device)
        } catch let error as UsbfsBudget.Exhausted {
            throw USBProblem.usbfsBudget(error)
        }
    }
}
