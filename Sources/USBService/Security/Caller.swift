import HTTPRouting
import USB

/// Who acts on a device, as a request's head established it: the name and scope of its token,
/// the lease token it acts under, and who it counts as for per-client bounds. Made once, from
/// a REST request's head (``RouteContext/caller(_:)``) or at a URB channel's upgrade, and
/// judged by the same checks either way (``RouteContext/checkControl(_:state:device:setup:)``
/// and its neighbours), so that a rule is written once for both.
struct Caller: Sendable {
    /// The token's name, nil without a token file.
    let name: String?
    let scope: Scope
    /// `X-USB-Lease`: acting under this lease.
    let leaseToken: String?
    /// For per-client bounds: "token NAME", or "address A" without tokens.
    let client: String
}

/// What a control request needs before its URB, once every check passed.
enum ControlPreparation: Equatable {
    case ready
    /// An interface nobody claimed: claim it first (usbfs would, and keep it).
    case claimFirst(UInt8)
    /// A hub's port request: the device on that port must be one the caller may drive.
    case hubPort(UInt8)
}

extension RouteContext {
    /// The usbfs memory `request`'s client may take on `session`'s device: its own share within
    /// the daemon's (``UsbfsBudget``), so that one client cannot hold what others need.
    func usbfsShare(_ request: RoutedRequest, _ session: DeviceSession) -> UsbfsShare {
        session.budget.share(for: client(request))
    }

    func caller(_ request: RoutedRequest) -> Caller {
        Caller(
            name: request.principal, scope: scope(of: request), leaseToken: request.request.headers["X-USB-Lease"],
            client: client(request))
    }

    /// 423 `lease-held` when another client's lease covers `interface` of `device` (nil: the
    /// whole device) and `caller` does not act under it.
    func checkLease(_ caller: Caller, device: String, interface: UInt8?) throws {
        _ = try leases.check(device: device, interface: interface, token: caller.leaseToken)
    }

    /// 403 insufficient-scope unless `caller` holds `needed`.
    func require(_ needed: Scope, _ caller: Caller) throws {
        guard caller.scope >= needed else {
            throw AuthProblem.insufficientScope(needed: needed, name: caller.name ?? "anonymous")
        }
    }

    /// 403 `interface-protected` (or insufficient-scope for an admin-only class) unless `caller`
    /// may use interface `number` of `device` (in `state`: its current alternate setting's class).
    func checkInterfaceAccess(_ caller: Caller, state: DeviceState, device: String, interface number: UInt8) throws {
        guard let interface = try? state.interface(number) else { return }  // the state check answers
        let alt = state.claims[number]?.altSetting ?? 0
        guard let descriptor = interface.altSettings.first(where: { $0.alternateSetting == alt }) ?? interface.altSettings.first
        else { return }
        let session = catalog.openSession(id: device)
        // A HID interface may be a security key, which only its report descriptor tells: read
        // now if the last scan came before the HID driver bound.
        let info = descriptor.interfaceClass == 0x03 ? session?.infoWithSecurityKeys() : session?.info
        try check(
            policy.access(
                toInterfaceClass: descriptor.interfaceClass, subclass: descriptor.interfaceSubClass,
                protocol: descriptor.interfaceProtocol, of: info, interface: number),
            caller, device: device, what: "interface \(number)")
    }

    /// 403 unless `caller` may send `setup` to `device` as a whole: a hub is protected (or,
    /// allowed by a rule, needs the admin scope); a device none of whose interfaces the caller
    /// may use (a boot keyboard, a stick) takes standard reads only (descriptors, status, its
    /// configuration), never a class or vendor request or a change, whatever the recipient says.
    func checkDeviceAccess(_ caller: Caller, state: DeviceState, device: String, setup: ControlSetup) throws {
        if Self.isHub(state) {
            let info = catalog.openSession(id: device)?.info
            try check(policy.access(toInterfaceClass: 0x09, subclass: 0, protocol: 0, of: info), caller, device: device, what: "the hub")
        }
        guard !(setup.kind == .standard && setup.direction == .in),
            let interfaces = state.active?.interfaces, let first = interfaces.first
        else { return }
        // One interface the caller may use: requests to the device may be for it (a composite's
        // open function); else the first one's protection answers.
        for interface in interfaces
        where (try? checkInterfaceAccess(caller, state: state, device: device, interface: interface.number)) != nil {
            return
        }
        try checkInterfaceAccess(caller, state: state, device: device, interface: first.number)
    }

    /// Every check of a control request before its URB, for REST and the URB channel alike:
    /// the standard requests refused in every form, then by recipient the lease and the policy
    /// (an interface, an endpoint's interface, or the device); what must happen before the URB.
    func checkControl(_ caller: Caller, state: DeviceState, device: String, setup: ControlSetup) throws
        -> ControlPreparation
    {
        try ControlRequest.refuseStateChanges(setup)
        let index = UInt8(truncatingIfNeeded: setup.index)
        switch setup.recipient {
        case .interface:
            try checkLease(caller, device: device, interface: index)
            try checkInterfaceAccess(caller, state: state, device: device, interface: index)
            // usbfs claims an interface a control request names if nobody has (and keeps it):
            // claimed first instead, so that the daemon's claims say what the kernel holds.
            if state.claims[index] == nil, (try? state.interface(index)) != nil { return .claimFirst(index) }
            return .ready
        case .endpoint:
            let interface = state.interface(ofEndpoint: index)
            try checkLease(caller, device: device, interface: interface)
            // An endpoint of no interface of the current settings (ep0, one of another alternate
            // setting, none at all) is judged as the device: never a way around a protected one.
            if let interface {
                try checkInterfaceAccess(caller, state: state, device: device, interface: interface)
            } else {
                try checkDeviceAccess(caller, state: state, device: device, setup: setup)
            }
            return .ready
        default:
            try checkLease(caller, device: device, interface: nil)
            try checkDeviceAccess(caller, state: state, device: device, setup: setup)
            return setup.recipient == .other && setup.kind == .class ? .hubPort(index) : .ready
        }
    }

    /// A hub's port request (class, recipient other, wIndex = port): the device on that port
    /// must be one the policy shows and no one else's lease may cover it.
    func checkHubPort(_ caller: Caller, hub: String, port: UInt8) async throws {
        guard port > 0, let child = await catalog.portDevice(hub: hub, port: port) else { return }
        guard child.shown else { throw AccessProblem.portOfHiddenDevice(hub: hub, port: port) }
        try checkLease(caller, device: child.id, interface: nil)
        // A port request (a reset, power off) drops the devices behind the port's device too.
        try await checkBehind(caller, device: child.id, what: "port \(port) of \(hub)")
    }

    /// 403 when a reset or a port request at `device` would drop a device behind it the policy
    /// hides; 423 when another client's lease covers one it shows.
    func checkBehind(_ caller: Caller, device: String, what: String) async throws {
        for behind in await catalog.devices(behind: device, including: false) {
            guard behind.shown else {
                throw AccessProblem.protected(
                    device: device, what: what, why: "it would drop \(behind.id) behind it, which the policy hides")
            }
            try checkLease(caller, device: behind.id, interface: nil)
        }
    }

    static func isHub(_ state: DeviceState) -> Bool {
        state.active?.interfaces.contains { $0.altSettings.contains { $0.interfaceClass == 0x09 } } ?? false
    }

    private func check(_ access: DevicePolicy.InterfaceAccess, _ caller: Caller, device: String, what: String) throws {
        switch access {
        case .open: return
        case .adminOnly:
            guard caller.scope >= .admin else { throw AccessProblem.adminOnly(device: device, what: what) }
        case .protected(let why): throw AccessProblem.protected(device: device, what: what, why: why)
        }
    }
}
