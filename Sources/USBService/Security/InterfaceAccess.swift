import HTTPRouting
import HTTPServer
import USB

/// The per-interface policy applied to requests: a protected interface (a keyboard inside a
/// composite device, a hub) cannot be claimed or sent control requests; a hub allowed by a
/// rule needs the admin scope; a hub's port request never reaches a port whose device is
/// denied or leased by someone else. The checks themselves take a ``Caller`` (Caller.swift),
/// the same for REST and the URB channel; these are their REST forms.
extension RouteContext {
    /// 403 insufficient-scope unless `request` holds `needed`: for what a route registered
    /// for a lower scope does only for some (another configuration: admin; claiming on a
    /// wait: transfer).
    func require(_ needed: Scope, _ request: RoutedRequest) throws {
        try require(needed, caller(request))
    }

    /// The scope `request` holds: its token's (with a token file), else the admin scope.
    func scope(of request: RoutedRequest) -> Scope {
        guard let tokens else { return .admin }
        return request.principal.flatMap { name in tokens.entries.first { $0.name == name }?.scope } ?? .read
    }

    /// ``checkInterfaceAccess(_:state:device:interface:)`` for `request` on `session`'s device now.
    func checkInterfaceAccess(_ request: RoutedRequest, session: DeviceSession, interface number: UInt8) async throws {
        try checkInterfaceAccess(caller(request), state: await session.state, device: session.id, interface: number)
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
