import USB

/// What the daemon holds of a device: its active configuration and claimed interfaces.
struct SessionState: Encodable, Sendable {
    var id: String
    var configuration: Nullable<UInt8>
    var claims: [ClaimModel]

    init(id: String, _ state: DeviceState) {
        self.id = id
        configuration = Nullable(state.activeConfiguration)
        claims = state.claims.values.sorted { $0.interface < $1.interface }.map(ClaimModel.init)
    }
}

/// `GET /v1/claims`: each device with claimed interfaces, in the listing's order.
struct ClaimList: Encodable, Sendable {
    var devices: [SessionState]
}

/// One claimed interface.
struct ClaimModel: Encodable, Sendable {
    var interface: UInt8
    var altSetting: UInt8
    var kernelDriverDetached: Bool

    init(_ claim: DeviceState.Claim) {
        interface = claim.interface
        altSetting = claim.altSetting
        kernelDriverDetached = claim.kernelDriverDetached
    }
}

/// The answer to a port reset.
struct ResetAnswer: Encodable, Sendable {
    /// The device came back as a new device: its sessions and claims are gone.
    var reenumerated: Bool
}

/// The answer to a clear-halt.
struct ClearHaltAnswer: Encodable, Sendable {
    var endpoint: String
    var halted: Bool
}
