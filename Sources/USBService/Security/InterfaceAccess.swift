import HTTPRouting
import HTTPServer
import USB

/// The per-interface policy applied to requests: a protected interface (a keyboard inside a
/// composite device, a hub) cannot be claimed or sent control requests; a hub allowed by a
/// rule needs the admin scope; a hub's port request never reaches a port whose device is
/// denied or leased by someone else.
extension RouteContext {
    /// 403 insufficient-scope unless `request` holds `needed`: for what a route registered
    /// for a lower scope does only for some (another configuration: admin; claiming on a
    /// wait: transfer).
    func require(_ needed: Scope, _ request: RoutedRequest) throws {
        guard scope(of: request) >= needed else {
            throw AuthProblem.insufficientScope(needed: needed, name: request.principal ?? "anonymous")
        }
    }

    /// The scope `request` holds: its token's (with a token file), else the admin scope.
    func scope(of request: RoutedRequest) -> Scope {
        guard let tokens else { return .admin }
        return request.principal.flatMap { name in tokens.entries.first { $0.name == name }?.scope } ?? .read
    }

    /// 403 `interface-protected` unless `request` may use interface `number` of `session`'s
    /// device (its current alternate setting's class).
    func checkInterfaceAccess(_ request: RoutedRequest, session: DeviceSession, interface number: UInt8) async throws {
        let state = await session.state
        guard let interface = try? state.interface(number) else { return }  // the state check answers
        let alt = state.claims[number]?.altSetting ?? 0
        guard let descriptor = interface.altSettings.first(where: { $0.alternateSetting == alt }) ?? interface.altSettings.first
        else { return }
        try check(
            policy.access(
                toInterfaceClass: descriptor.interfaceClass, subclass: descriptor.interfaceSubClass,
                protocol: descriptor.interfaceProtocol),
            request, device: session.id, what: "interface \(number)")
    }

    /// 403 unless `request` may send requests to `session`'s device as a whole: a hub is
    /// protected (or, allowed by a rule, needs the admin scope).
    func checkDeviceAccess(_ request: RoutedRequest, session: DeviceSession) async throws {
        guard await Self.isHub(session) else { return }
        try check(policy.access(toInterfaceClass: 0x09, subclass: 0, protocol: 0), request, device: session.id, what: "the hub")
    }

    /// A hub's port request (class, recipient other, wIndex = port): the device on that port
    /// must be one the policy shows and no one else's lease may cover it.
    func checkHubPort(_ request: RoutedRequest, session: DeviceSession, port: UInt8) async throws {
        guard port > 0, let child = await catalog.portDevice(hub: session.id, port: port) else { return }
        guard child.shown else { throw AccessProblem.portOfHiddenDevice(hub: session.id, port: port) }
        try checkLease(request, device: child.id, interface: nil)
    }

    static func isHub(_ session: DeviceSession) async -> Bool {
        let state = await session.state
        return state.active?.interfaces.contains { $0.altSettings.contains { $0.interfaceClass == 0x09 } } ?? false
    }

    private func check(_ access: DevicePolicy.InterfaceAccess, _ request: RoutedRequest, device: String, what: String) throws {
        switch access {
        case .open: return
        case .adminOnly:
            guard scope(of: request) >= .admin else { throw AccessProblem.adminOnly(device: device, what: what) }
        case .protected(let why): throw AccessProblem.protected(device: device, what: what, why: why)
        }
    }
}

/// 403 answers of the per-interface policy.
enum AccessProblem: HTTPResponseError, Sendable {
    case protected(device: String, what: String, why: String)
    case adminOnly(device: String, what: String)
    case portOfHiddenDevice(hub: String, port: UInt8)

    var status: Int { 403 }

    var code: String {
        switch self {
        case .protected, .portOfHiddenDevice: "interface-protected"
        case .adminOnly: "insufficient-scope"
        }
    }

    var title: String {
        switch self {
        case .protected, .portOfHiddenDevice: "Protected"
        case .adminOnly: "Insufficient scope"
        }
    }

    var detail: String {
        switch self {
        case .protected(let device, let what, let why): "\(what.prefix(1).uppercased() + what.dropFirst()) of \(device) is protected: \(why)."
        case .adminOnly(let device, let what): "\(what.prefix(1).uppercased() + what.dropFirst()) of \(device) needs the admin scope."
        case .portOfHiddenDevice(let hub, let port):
            "Port \(port) of hub \(hub) carries a device the policy does not show: its port cannot be driven from here."
        }
    }
}
