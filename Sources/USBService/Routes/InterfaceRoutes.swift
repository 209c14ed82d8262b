import HTTPRouting
import Logging
import HTTPServer
import USB

/// A device's configuration, its interface claims and alternate settings, and port reset.
struct InterfaceRoutes: Sendable {
    let context: RouteContext

    func register(in router: inout Router) {
        router.get("/v1/claims", requires: Access.read) { try await allClaims($0) }
        router.device(
            "GET", "/v1/devices/{id}/claims", requires: Access.read, DeviceRoute(query: [], lease: .none), context: context,
            claims)
        router.device(
            "POST", "/v1/devices/{id}/interfaces/{interface}/claim", requires: Access.transfer,
            DeviceRoute(
                query: ["detach"], lease: .byRoute(where: "RouteContext.claim: the lease, then the interface policy"),
                parse: { try $0.query.boolean("detach") ?? true }),
            context: context, claim)
        router.device(
            "DELETE", "/v1/devices/{id}/interfaces/{interface}/claim", requires: Access.transfer,
            DeviceRoute(query: [], lease: .interface), context: context, release)
        router.device(
            "PUT", "/v1/devices/{id}/interfaces/{interface}/alt-setting", requires: Access.transfer,
            DeviceRoute(
                query: ["value"], lease: .interface, parse: { UInt8(try $0.query.requiredInteger("value", in: 0...0xff)) }),
            context: context, altSetting)
        // The transfer scope may select the active configuration again (a no-op; PyUSB scripts
        // begin with dev.set_configuration()); changing it needs admin, checked in the route.
        router.device(
            "PUT", "/v1/devices/{id}/configuration", requires: Access.transfer,
            DeviceRoute(
                query: ["value"], lease: .byRoute(where: "configuration: only when it changes something"),
                parse: { try $0.query.requiredInteger("value", in: 0...0xff) }),
            context: context, configuration)
        router.device(
            "POST", "/v1/devices/{id}/reset", requires: Access.admin, DeviceRoute(query: [], lease: .device), context: context,
            reset)
    }

    /// Every device with a claimed interface, from the sessions open now: no device is opened
    /// to answer (one that nobody opened has no claims), so a page may ask at once for all.
    func allClaims(_ request: RoutedRequest) async throws -> HTTPResponse {
        try request.query.allow(only: [])
        var held: [SessionState] = []
        for device in try await context.devices() {
            guard let session = context.catalog.openSession(id: device.id) else { continue }
            let state = SessionState(id: session.id, await session.state)
            if !state.claims.isEmpty { held.append(state) }
        }
        return try .json(ClaimList(devices: held))
    }

    func claims(_ call: DeviceCall, _: Void) async throws -> HTTPResponse {
        let session = call.session
        return try .json(SessionState(id: session.id, await session.state))
    }

    /// `detach=false` leaves a bound kernel driver alone: 409 device-busy naming it instead
    /// (what PyUSB's libusb1 backend gets without detach_kernel_driver).
    func claim(_ call: DeviceCall, _ detach: Bool) async throws -> HTTPResponse {
        let (request, session, number) = (call.request, call.session, call.pathNumber)
        return try .json(ClaimModel(try await context.claim(number, of: session, detach: detach, for: request)))
    }

    func release(_ call: DeviceCall, _: Void) async throws -> HTTPResponse {
        let (request, session, number) = (call.request, call.session, call.pathNumber)
        try await context.usb("Releasing interface \(number) of \(session.id)", device: session.id) {
            try await session.release(number)
        }
        request.request.logger.info(
            "interface released", metadata: ["usb.device": "\(session.id)", "usb.interface": "\(number)"])
        return try .json(SessionState(id: session.id, await session.state))
    }

    func altSetting(_ call: DeviceCall, _ value: UInt8) async throws -> HTTPResponse {
        let (session, number) = (call.session, call.pathNumber)
        try await context.usb("Selecting alternate setting \(value) of interface \(number) of \(session.id)", device: session.id) {
            try await session.setAltSetting(interface: number, altSetting: value)
        }
        return try .json(SessionState(id: session.id, await session.state))
    }

    func configuration(_ call: DeviceCall, _ value: Int) async throws -> HTTPResponse {
        let (request, session) = (call.request, call.session)
        // The active configuration again: the kernel's lightweight reset (halts cleared, data
        // toggles and alternate settings back to their start), which PyUSB scripts count on from
        // dev.set_configuration(), under the transfer scope; but only while nobody holds an
        // interface (no claim here, no kernel driver, no other program through usbfs), since it
        // would pull the alternate settings from under them. Otherwise it changes nothing.
        if value != 0, await session.state.activeConfiguration == UInt8(value) {
            let state = await session.state
            let drivers = state.active.map { Sysfs.interfaceDrivers(device: session.id, configuration: $0) } ?? [:]
            if state.claims.isEmpty && drivers.isEmpty {
                try context.checkLease(request, device: session.id, interface: nil)
                try await context.usb("Selecting configuration \(value) of \(session.id) again", device: session.id) {
                    try await session.setConfiguration(UInt8(value))
                }
            }
            return try .json(SessionState(id: session.id, await session.state))
        }
        try context.require(.admin, request)
        try context.checkLease(request, device: session.id, interface: nil)
        try await context.usb("Selecting configuration \(value) of \(session.id)", device: session.id) {
            try await session.setConfiguration(value == 0 ? nil : UInt8(value))
        }
        return try .json(SessionState(id: session.id, await session.state))
    }

    func reset(_ call: DeviceCall, _: Void) async throws -> HTTPResponse {
        let (request, session) = (call.request, call.session)
        // The kernel refuses (EISDIR, which libusb reports as LIBUSB_ERROR_OTHER): say why.
        guard !session.id.hasPrefix("usb") else { throw USBProblem.rootHub(session.id, action: "reset") }
        // A hub's reset drops every device behind it: none may be one the caller may not touch.
        try await context.checkBehind(context.caller(request), device: session.id, what: "the reset")
        do {
            try await session.reset()
        } catch let error as USBError {
            // LIBUSB_ERROR_NOT_FOUND: the device came back as a new device; look it up again.
            guard error == .notFound else { throw USBProblem.usb(error, context: "Resetting \(session.id)") }
            return try .json(ResetAnswer(reenumerated: true))
        }
        request.request.logger.info("device reset", metadata: ["usb.device": "\(session.id)"])
        return try .json(ResetAnswer(reenumerated: false))
    }
}

extension RouteContext {
    /// Claims interface `number` of `session` for `request`, as every route that claims does
    /// (the claim route, a wait that claims on the device that came back) and the URB channel:
    /// the lease that covers it, the interface policy, then the claim; a bound kernel driver is
    /// detached, or with `detach` false left alone: 409 device-busy naming it.
    func claim(_ number: UInt8, of session: DeviceSession, detach: Bool, for request: RoutedRequest) async throws
        -> DeviceState.Claim
    {
        try await claim(number, of: session, detach: detach, caller: caller(request), logger: request.request.logger)
    }

    func claim(
        _ number: UInt8, of session: DeviceSession, detach: Bool, caller: Caller, logger: Logger, owner: ClaimOwner? = nil
    ) async throws -> DeviceState.Claim {
        try checkLease(caller, device: session.id, interface: number)
        try checkInterfaceAccess(caller, state: await session.state, device: session.id, interface: number)
        let claim = try await usb("Claiming interface \(number) of \(session.id)", device: session.id) {
            do {
                return try await session.claim(number, detach: detach, owner: owner)
            } catch let error as USBError where error == .busy && !detach {
                guard let configuration = await session.state.activeConfiguration,
                    let driver = Sysfs.interfaceDriver(device: session.id, configuration: configuration, interface: number)
                else { throw USBError.busy }
                throw USBProblem.kernelDriverBound(session.id, interface: number, driver: driver)
            }
        }
        logger.info(
            "interface claimed",
            metadata: [
                "usb.device": "\(session.id)", "usb.interface": "\(number)",
                "usb.kernel_driver_detached": "\(claim.kernelDriverDetached)",
            ])
        return claim
    }
}
