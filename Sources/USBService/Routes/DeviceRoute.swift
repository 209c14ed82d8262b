import HTTPRouting
import HTTPServer
import USB

/// The checks a device route makes before its work, declared where the route is registered
/// (as its scope is), run by one preamble in one order: a new route says what it needs and
/// cannot forget a check or make them in another order.
///
/// 1. the query's keys: anything else is 400;
/// 2. the path's `{interface}` or `{endpoint}` number (the template says which);
/// 3. the route's own reading of its request (``parse``: its query values and body; nothing
///    about the device yet, so a malformed request is 400 whatever the device);
/// 4. the device's session: 400 for a malformed id, 404, 410, 409 for another instance;
/// 5. what the route must learn of the device before the lease (``prepare``: an endpoint's
///    packet size, whether an interface exists);
/// 6. the lease over what it changes (``Lease``): 423;
/// 7. its place among the streams (``Slot``): 503 per client or per device.
struct DeviceRoute<Input: Sendable>: Sendable {
    /// What of the device the route changes, for the lease that must allow it.
    enum Lease: Sendable {
        /// Nothing a lease covers: the route reads state.
        case none
        /// The whole device (reset).
        case device
        /// The interface `{interface}` names.
        case interface
        /// The interface whose current alternate setting has `{endpoint}` (none: the device's).
        case endpoint
        /// Decided by the route from what it does; `where` names the check.
        case byRoute(where: String)
    }

    /// The route's place among the device's streams.
    enum Slot: Sendable {
        case none
        /// A stream: bounded per device, per client and in all; cut by a lease over its interface.
        case stream
        /// Not a stream (a URB channel): only so that a lease over the device cuts its transfers.
        case watch
    }

    var query: [String]
    var lease: Lease
    var slot = Slot.none
    var parse: @Sendable (RoutedRequest) throws -> Input
    var prepare: @Sendable (DeviceCall, Input) async throws -> Input = { $1 }
}

extension DeviceRoute where Input == Void {
    init(query: [String], lease: Lease, slot: Slot = .none) {
        self.init(query: query, lease: lease, slot: slot, parse: { _ in () })
    }
}

/// A device route's requirement: its access, for the guards, and the preamble declared with
/// it, for anyone reading the route table (a test checks every device route has one).
struct DeviceRouteRequirement: RouteRequirement {
    let access: Access
    let lease: String
    let slot: String
}

/// A device request past its route's preamble: its session, the path's number, and what the
/// preamble resolved.
struct DeviceCall: Sendable {
    let request: RoutedRequest
    let session: DeviceSession
    /// The path's `{interface}` or `{endpoint}`, if the template has one.
    let number: UInt8?
    /// The interface the lease was checked for (nil: the device, or none).
    var interface: UInt8?
    /// Its place among the streams, for ``DeviceRoute/Slot`` other than `.none`.
    var slot: StreamSlots.Slot?

    var id: String { session.id }

    /// The path's `{interface}` or `{endpoint}`, for a route whose template has one.
    var pathNumber: UInt8 {
        guard let number else { preconditionFailure("the route's template has no {interface} or {endpoint}") }
        return number
    }
}

extension Router {
    /// Serves `method` on `template` (a `/v1/devices/{id}/…` path) with `run`, after `route`'s
    /// preamble (``DeviceRoute``).
    mutating func device<Input: Sendable>(
        _ method: String, _ template: String, requires access: Access, streamsBody: Bool = false,
        _ route: DeviceRoute<Input>, context: RouteContext,
        _ run: @escaping @Sendable (DeviceCall, Input) async throws -> HTTPResponse
    ) {
        let parameter = template.contains("{endpoint}") ? "endpoint" : template.contains("{interface}") ? "interface" : nil
        let requirement = DeviceRouteRequirement(access: access, lease: "\(route.lease)", slot: "\(route.slot)")
        add(method, template, requires: requirement, streamsBody: streamsBody) { request in
            try request.query.allow(only: route.query)
            let number = try parameter.map { try context.byte(request, $0) }
            var input = try route.parse(request)
            let session = try await context.session(request)
            var call = DeviceCall(request: request, session: session, number: number)
            input = try await route.prepare(call, input)
            switch route.lease {
            case .none, .byRoute: break
            case .device: try context.checkLease(request, device: session.id, interface: nil)
            case .interface, .endpoint:
                guard let number else { preconditionFailure("\(template) has no {interface} or {endpoint}") }
                call.interface = parameter == "endpoint" ? await session.state.interface(ofEndpoint: number) : number
                try context.checkLease(request, device: session.id, interface: call.interface)
            }
            switch route.slot {
            case .none: break
            case .stream:
                call.slot = try context.streamSlots.acquire(
                    device: session.id, interface: call.interface, client: context.client(request))
            case .watch: call.slot = context.streamSlots.watch(device: session.id, client: context.client(request))
            }
            return try await run(call, input)
        }
    }
}
