import Logging

/// Claims, alternate settings, configurations, halts and resets: blocking libusb calls, each run
/// on the device's worker thread while the actor's other work waits.
extension DeviceSession {
    /// Claims interface `number` (libusb_claim_interface), detaching its kernel driver if one is
    /// bound, or, unless `detach`, failing with LIBUSB_ERROR_BUSY as libusb does without
    /// auto-detach (libusb_kernel_driver_active first, then the claim, on the worker thread).
    /// `owner`: who the claim belongs to (a URB channel), for ``release(_:ifOwnedBy:)``.
    public func claim(_ number: UInt8, detach: Bool = true, owner: ClaimOwner? = nil) async throws -> DeviceState.Claim {
        try await ready()
        leftovers = [:]
        try state.checkClaim(number)
        let (io, id, configuration) = (io, id, state.activeConfiguration)
        let (detached, altSetting) = try await blocking { () throws(USBError) -> (Bool, UInt8?) in
            let detached = (try? io.kernelDriverActive(interface: number)) ?? false
            if detached && !detach { throw .busy }
            try io.claimInterface(number)
            let altSetting = configuration.flatMap { Sysfs.altSetting(device: id, configuration: $0, interface: number) }
            return (detached, altSetting)
        }
        let claim = DeviceState.Claim(
            interface: number, altSetting: altSetting ?? 0, kernelDriverDetached: detached, owner: owner)
        state.claimed(claim)
        claimsChanged?(id)
        return claim
    }

    /// Releases interface `number` (libusb_release_interface); its kernel driver, if one was
    /// detached, is attached again (the handle's auto-detach) unless `reattach` is false: a
    /// URB channel's client that detached the driver itself (libusb_detach_kernel_driver),
    /// which libusb leaves detached after the release.
    public func release(_ number: UInt8, reattach: Bool = true) async throws {
        try await ready()
        leftovers = [:]
        _ = try state.claim(number)
        defer {
            state.released(number)
            claimsChanged?(id)
        }
        let io = io
        try await blocking { () throws(USBError) in
            guard !reattach else { return try io.releaseInterface(number) }
            // Auto-detach is the handle's: off for this one release, so libusb's Linux backend
            // does not attach the driver back (USBDEVFS_CONNECT) after it.
            try io.setAutoDetachKernelDriver(false)
            defer { try? io.setAutoDetachKernelDriver(true) }
            try io.releaseInterface(number)
        }
    }

    /// Releases interface `number` only if `owner` still holds it (a URB channel giving back its
    /// claims when it closes: someone may have released and claimed it again since); whether it did.
    @discardableResult
    public func release(_ number: UInt8, ifOwnedBy owner: ClaimOwner) async throws -> Bool {
        try await ready()
        // Checked after the wait, with nothing blocking: the release below starts at once.
        guard state.claims[number]?.owner == owner else { return false }
        leftovers = [:]
        defer {
            state.released(number)
            claimsChanged?(id)
        }
        let io = io
        try await blocking { () throws(USBError) in try io.releaseInterface(number) }
        return true
    }

    /// Selects alternate setting `altSetting` of claimed interface `interface` (libusb_set_interface_alt_setting).
    public func setAltSetting(interface: UInt8, altSetting: UInt8) async throws {
        try await ready()
        leftovers = [:]
        try state.checkAltSetting(interface: interface, altSetting: altSetting)
        let io = io
        try await blocking { () throws(USBError) in try io.setAltSetting(interface: interface, altSetting: altSetting) }
        state.altSettingSelected(interface: interface, altSetting: altSetting)
    }

    /// Activates configuration `value`, or unconfigures the device for nil (libusb_set_configuration).
    public func setConfiguration(_ value: UInt8?) async throws {
        try await ready()
        leftovers = [:]
        try state.checkConfiguration(value)
        let io = io
        try await blocking { () throws(USBError) in try io.setConfiguration(value) }
        state.configured(value)
    }

    /// Clears a halt (stall) on `endpoint` of a claimed interface (libusb_clear_halt).
    public func clearHalt(_ endpoint: UInt8) async throws {
        try await ready()
        leftovers = [:]
        _ = try state.endpoint(endpoint, for: .clearHalt)
        let io = io
        try await blocking { () throws(USBError) in try io.clearHalt(endpoint: endpoint) }
    }

    /// Resets the device's port (libusb_reset_device). Claims survive; alternate settings go
    /// back to 0. If the device comes back as another device the session is gone.
    public func reset() async throws {
        try await ready()
        leftovers = [:]
        let io = io
        do {
            try await blocking { () throws(USBError) in try io.reset() }
        } catch {
            if error == .notFound { goneFlag.store(true, ordering: .releasing) }
            throw error
        }
        state.wasReset()
    }
}
