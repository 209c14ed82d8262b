import Logging
import USB

/// OPERATION: the device operations of libusb (claims, alternate settings, halts, resets,
/// kernel drivers, configurations), each with the checks of its REST route, on the device's
/// worker as REST's, answered by a RESULT in the order they came.
extension URBChannel {
    /// An OPERATION message: it waits its turn (USE_LEASE too, so that it applies from the
    /// next message on, in order).
    func operation(_ request: URBMessage.OperationRequest, tail: [UInt8]) {
        wait(.operation(request, tail: tail))
    }

    /// Runs one operation: its RESULT's error (0: done), value and reason.
    func perform(_ request: URBMessage.OperationRequest, tail: [UInt8]) async -> (error: Int32, value: Int32, reason: String) {
        if request.operation == .useLease {
            let token = String(decoding: tail, as: UTF8.self)
            caller = Caller(name: caller.name, scope: caller.scope, leaseToken: token.isEmpty ? nil : token, client: caller.client)
            return (0, 0, "")
        }
        do {
            let value = try await run(request)
            return (0, value, "")
        } catch {
            let (code, reason) = ChannelErrors.libusb(error, device: session.id)
            return (code, 0, reason)
        }
    }

    private func run(_ request: URBMessage.OperationRequest) async throws -> Int32 {
        if deviceGone { throw USBError.noDevice }
        let logger = self.logger.logger
        switch request.operation {
        case .claimInterface:
            let number = try interface(request.a)
            let claim = try await context.claim(
                number, of: session, detach: request.b != 0, caller: caller, logger: logger, owner: owner)
            claimed.insert(number)
            return claim.kernelDriverDetached ? 1 : 0
        case .releaseInterface:
            let number = try interface(request.a)
            try context.checkLease(caller, device: session.id, interface: number)
            // libusb's semantics: a driver the client detached itself stays detached.
            try await session.release(number, reattach: !detached.contains(number))
            claimed.remove(number)
            return 0
        case .setAltSetting:
            let number = try interface(request.a)
            guard (0...255).contains(request.b) else { throw USBError.invalidParameter }
            try context.checkLease(caller, device: session.id, interface: number)
            try await session.setAltSetting(interface: number, altSetting: UInt8(request.b))
            return 0
        case .clearHalt:
            guard (0...255).contains(request.a) else { throw USBError.invalidParameter }
            let endpoint = UInt8(request.a)
            try context.checkLease(caller, device: session.id, interface: await session.state.interface(ofEndpoint: endpoint))
            try await session.clearHalt(endpoint)
            return 0
        case .resetDevice:
            try context.require(.admin, caller)
            try context.checkLease(caller, device: session.id, interface: nil)
            guard !session.id.hasPrefix("usb") else { throw USBProblem.rootHub(session.id, action: "reset") }
            try await context.checkBehind(caller, device: session.id, what: "the reset")
            try await session.reset()
            logger.info("device reset", metadata: ["usb.device": "\(session.id)"])
            return 0
        case .kernelDriverActive:
            return try await session.kernelDriverActive(try interface(request.a)) ? 1 : 0
        case .detachKernelDriver:
            let number = try interface(request.a)
            try context.checkLease(caller, device: session.id, interface: number)
            try context.checkInterfaceAccess(caller, state: await session.state, device: session.id, interface: number)
            try await session.detachKernelDriver(number)
            detached.insert(number)
            return 0
        case .attachKernelDriver:
            let number = try interface(request.a)
            try context.checkLease(caller, device: session.id, interface: number)
            try await session.attachKernelDriver(number)
            detached.remove(number)
            return 0
        case .setConfiguration:
            try await setConfiguration(request.a)
            return 0
        case .getConfiguration:
            return Int32(await session.state.activeConfiguration ?? 0)
        case .useLease:
            return 0
        }
    }

    /// An interface number from an OPERATION's field.
    private func interface(_ value: Int32) throws -> UInt8 {
        guard (0...255).contains(value) else { throw USBError.invalidParameter }
        return UInt8(value)
    }

    /// As PUT …/configuration: the active configuration again is the kernel's lightweight reset
    /// while nobody holds an interface (else nothing), under the transfer scope; another
    /// configuration (0 or -1: unconfigured) needs admin.
    private func setConfiguration(_ requested: Int32) async throws {
        guard (-1...255).contains(requested) else { throw USBError.invalidParameter }
        let value: UInt8? = requested <= 0 ? nil : UInt8(requested)
        let state = await session.state
        if let value, state.activeConfiguration == value {
            let drivers = state.active.map { Sysfs.interfaceDrivers(device: session.id, configuration: $0) } ?? [:]
            guard state.claims.isEmpty && drivers.isEmpty else { return }
            try context.checkLease(caller, device: session.id, interface: nil)
            try await session.setConfiguration(value)
            return
        }
        try context.require(.admin, caller)
        try context.checkLease(caller, device: session.id, interface: nil)
        try await session.setConfiguration(value)
    }
}
