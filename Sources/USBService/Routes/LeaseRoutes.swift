import HTTPRouting
import HTTPServer
import USB

/// Leases for sharing a device: take one on a device or one interface, renew it before its
/// time is up, give it back. While it is held, changes to what it covers need its token
/// (``RouteContext/checkLease(_:device:interface:)``); when it expires, its claims are released.
struct LeaseRoutes: Sendable {
    let context: RouteContext
    static let ttlRange = 1_000...3_600_000

    func register(in router: inout Router) {
        router.post("/v1/devices/{id}/leases") { try await take($0) }
        router.get("/v1/leases") { try list($0) }
        router.put("/v1/leases/{lease}") { try await renew($0) }
        router.delete("/v1/leases/{lease}") { try await release($0) }
    }

    func take(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: ["interface", "ttl_ms"])
        let interface = try request.query.integer("interface", in: 0...255).map(UInt8.init)
        let ttl = try Self.ttl(request)
        let session = try await context.session(request)
        if let interface, await session.state.active?.interfaces.contains(where: { $0.number == interface }) != true {
            throw DeviceStateProblem(.interfaceNotFound(interface, configuration: await session.state.active?.value ?? 0), device: session.id)
        }
        let lease = try context.leases.grant(
            device: session.id, interface: interface, holder: request.principal ?? "anonymous", ttl: ttl)
        expire(lease)
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
        expire(lease)
        return try .json(LeaseModel(lease, withToken: false))
    }

    func release(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        let lease = try context.leases.release(
            id: request.parameters["lease"] ?? "", token: request.request.headers["X-USB-Lease"])
        request.request.logger.info("lease released", metadata: ["usb.lease": "\(lease.id)"])
        return try .json(LeaseModel(lease, withToken: false))
    }

    /// `ttl_ms`, 30 s when absent.
    private static func ttl(_ request: RoutedRequest) throws(RoutingProblem) -> Duration {
        .milliseconds(try request.query.integer("ttl_ms", in: ttlRange) ?? 30_000)
    }

    /// When `lease` may have run out: if it has (not renewed meanwhile), release the claims it
    /// covered.
    private func expire(_ lease: Lease) {
        let context = self.context
        Task {
            try? await Task.sleep(until: lease.expires + .milliseconds(5))
            for expired in context.leases.takeExpired() {
                guard let session = try? await context.catalog.session(id: expired.device) else { continue }
                let claimed = await session.state.claims.keys.filter { expired.interface == nil || $0 == expired.interface }
                for number in claimed.sorted() { try? await session.release(number) }
                context.logger.notice(
                    "lease expired: its claims are released",
                    metadata: ["usb.device": "\(expired.device)", "usb.lease": "\(expired.id)", "usb.interfaces": "\(claimed.sorted())"])
            }
        }
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

    init(_ lease: Lease, withToken: Bool) {
        id = lease.id
        token = withToken ? lease.token : nil
        device = lease.device
        interface = Nullable(lease.interface.map(Int.init))
        holder = lease.holder
        fencing = Int(lease.fencing)
        expiresAt = Timestamp.iso8601(lease.expiresAt)
    }
}

struct LeaseList: Encodable, Sendable {
    var leases: [LeaseModel]
}
