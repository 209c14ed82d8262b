import HTTPRouting
import Logging
import HTTPServer
import USB

/// Leases for sharing a device: take one on a device or one interface, renew it before its
/// time is up, give it back. While it is held, changes to what it covers need its token
/// (``RouteContext/checkLease(_:device:interface:)``); when it expires, or an admin ends it,
/// its streams are cut and its claims released (``end(_:why:catalog:streamSlots:logger:)``).
struct LeaseRoutes: Sendable {
    let context: RouteContext
    static let ttlRange = 1_000...3_600_000
    static let graceRange = 0...3_600_000

    func register(in router: inout Router) {
        router.device(
            "POST", "/v1/devices/{id}/leases", requires: Access.transfer,
            DeviceRoute(
                query: ["interface", "ttl_ms", "grace_ms"], lease: .byRoute(where: "LeaseTable.grant: another's refuses it"),
                parse: { request in
                    Taking(
                        interface: try request.query.integer("interface", in: 0...255).map(UInt8.init),
                        ttl: try Self.ttl(request), grace: try request.query.integer("grace_ms", in: Self.graceRange) ?? 60_000)
                },
                prepare: { call, taking in
                    let state = await call.session.state
                    if let interface = taking.interface, state.active?.interfaces.contains(where: { $0.number == interface }) != true {
                        throw DeviceStateProblem(
                            .interfaceNotFound(interface, configuration: state.active?.value ?? 0), device: call.id)
                    }
                    return taking
                }),
            context: context, take)
        router.get("/v1/leases", requires: Access.read, immediately: list)
        router.put("/v1/leases/{lease}", requires: Access.transfer) { try await renew($0) }
        router.delete("/v1/leases/{lease}", requires: Access.transfer) { try await release($0) }
    }

    /// What a lease is asked for: the interface (nil: the whole device), how long, its grace.
    struct Taking: Sendable {
        var interface: UInt8?
        var ttl: Duration
        var grace: Int
    }

    func take(_ call: DeviceCall, _ taking: Taking) async throws -> HTTPResponse {
        let (request, session, interface, ttl, grace) = (call.request, call.session, taking.interface, taking.ttl, taking.grace)
        let lease = try await context.leases.grant(
            device: session.id, interface: interface, holder: request.principal ?? "anonymous", ttl: ttl,
            grace: .milliseconds(grace))
        // Streams already running on what the lease covers were started without its token: they end.
        let cut = context.streamSlots.cut(device: session.id, interface: interface)
        request.request.logger.info(
            "lease granted",
            metadata: [
                "usb.device": "\(session.id)", "usb.lease": "\(lease.id)", "usb.lease.fencing": "\(lease.fencing)",
                "usb.lease.streams_cut": "\(cut)",
            ])
        return try .json(LeaseModel(lease, withToken: true), status: 201)
    }

    func list(_ request: RoutedRequest) throws -> HTTPResponse {
        try request.query.allow(only: [])
        return try .json(LeaseList(leases: context.leases.all.map { LeaseModel($0, withToken: false) }))
    }

    func renew(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: ["ttl_ms"])
        let ttl = try Self.ttl(request)
        let lease = try context.leases.renew(
            id: request.parameters["lease"] ?? "", token: request.request.headers["X-USB-Lease"], ttl: ttl)
        return try .json(LeaseModel(lease, withToken: false))
    }

    /// The holder ends its lease with its token (its claims stay its own); with `force=true` an
    /// admin ends anyone's, which cuts its streams and releases its claims.
    func release(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: ["force"])
        let id = request.parameters["lease"] ?? ""
        if try request.query.boolean("force") ?? false {
            try context.require(.admin, request)
            let lease = try await context.leases.endByAdmin(id: id)
            return try .json(LeaseModel(lease, withToken: false))
        }
        let lease = try context.leases.release(id: id, token: request.request.headers["X-USB-Lease"])
        request.request.logger.info("lease released", metadata: ["usb.lease": "\(lease.id)"])
        return try .json(LeaseModel(lease, withToken: false))
    }

    /// `ttl_ms`, 30 s when absent.
    private static func ttl(_ request: RoutedRequest) throws(RoutingProblem) -> Duration {
        .milliseconds(try request.query.integer("ttl_ms", in: ttlRange) ?? 30_000)
    }

    /// Ends `lease` (expired, or ended by an admin): the streams on what it covered are cut and
    /// the claims on it released, so the next holder finds the device as nobody left it.
    static func end(
        _ lease: Lease, why: LeaseTable.Ending, catalog: any DeviceCatalog, streamSlots: StreamSlots, logger: Logger
    ) async {
        let cut = streamSlots.cut(device: lease.device, interface: lease.interface)
        var released: [UInt8] = []
        if let session = catalog.openSession(id: lease.device) {
            let claimed = await session.state.claims.keys.filter { lease.interface == nil || $0 == lease.interface }
            for number in claimed.sorted() {
                do {
                    try await session.release(number)
                    released.append(number)
                } catch {
                    logger.warning(
                        "a claim of an ended lease could not be released",
                        metadata: ["usb.device": "\(lease.device)", "usb.interface": "\(number)", "error": "\(error)"])
                }
            }
        }
        logger.notice(
            "lease \(why.rawValue): its streams are cut and its claims released",
            metadata: [
                "usb.device": "\(lease.device)", "usb.lease": "\(lease.id)", "usb.lease.holder": "\(lease.holder)",
                "usb.interfaces": "\(released)", "usb.lease.streams_cut": "\(cut)",
            ])
    }
}

/// A lease as the API shows it; its token only to whoever took it.
struct LeaseModel: Encodable, Sendable {
    var id: String
    var token: String?
    var device: String
    /// null: the whole device.
    var interface: Nullable<Int>
    var holder: String
    var fencing: Int
    var expiresAt: String
    var graceMs: Int
    /// When its device left the port (it is away: the lease runs out at the end of its grace
    /// unless the device comes back), null while it is present.
    var deviceGoneAt: Nullable<String>

    init(_ lease: Lease, withToken: Bool) {
        id = lease.id
        token = withToken ? lease.token : nil
        device = lease.device
        interface = Nullable(lease.interface.map(Int.init))
        holder = lease.holder
        fencing = Int(lease.fencing)
        expiresAt = Timestamp.iso8601(lease.expiresAt)
        graceMs = Int(lease.grace.seconds * 1000)
        deviceGoneAt = Nullable(lease.goneSince.map { Timestamp.iso8601($0.unix) })
    }
}

struct LeaseList: Encodable, Sendable {
    var leases: [LeaseModel]
}
