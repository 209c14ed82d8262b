import Synchronization

/// What the daemon knows of one open device and decides from, with no I/O: the active
/// configuration, the interfaces it has claimed and their alternate settings. Every check
/// made before a URB is submitted lives here, so it can be tested without a device.
public struct DeviceState: Sendable, Equatable {
    /// An interface this daemon holds.
    public struct Claim: Sendable, Equatable {
        public var interface: UInt8
        public var altSetting: UInt8
        /// A kernel driver was bound and was detached by the claim (it comes back on release).
        public var kernelDriverDetached: Bool
        /// Who made it, when it belongs to someone (a URB channel, which gives its claims back
        /// when it closes); nil for the REST API's claims, which the daemon holds for all.
        public var owner: ClaimOwner?

        public init(interface: UInt8, altSetting: UInt8 = 0, kernelDriverDetached: Bool = false, owner: ClaimOwner? = nil) {
            self.interface = interface
            self.altSetting = altSetting
            self.kernelDriverDetached = kernelDriverDetached
            self.owner = owner
        }
    }

    /// What a request wants to do with an endpoint.
    public enum EndpointUse: Sendable {
        /// A bulk or interrupt transfer, IN or OUT.
        case read, write
        /// An isochronous transfer, IN or OUT.
        case isoRead, isoWrite
        case clearHalt
    }

    public let configurations: [ConfigurationDescriptor]
    /// bConfigurationValue of the active configuration, nil when unconfigured.
    public internal(set) var activeConfiguration: UInt8?
    /// Claimed interfaces by number.
    public internal(set) var claims: [UInt8: Claim] = [:]

    public init(configurations: [ConfigurationDescriptor], activeConfiguration: UInt8?) {
        self.configurations = configurations
        self.activeConfiguration = activeConfiguration
    }

    /// The active configuration's descriptor.
    public var active: ConfigurationDescriptor? {
        configurations.first { $0.value == activeConfiguration }
    }

    /// Interface `number` of the active configuration.
    public func interface(_ number: UInt8) throws(DeviceStateError) -> Interface {
        guard let active else { throw .unconfigured }
        guard let interface = active.interfaces.first(where: { $0.number == number }) else {
            throw .interfaceNotFound(number, configuration: active.value)
        }
        return interface
    }

    /// Checks that `number` exists and is not claimed yet.
    public func checkClaim(_ number: UInt8) throws(DeviceStateError) {
        _ = try interface(number)
        if claims[number] != nil { throw .interfaceClaimed(number) }
    }

    /// The claim on `number`.
    public func claim(_ number: UInt8) throws(DeviceStateError) -> Claim {
        _ = try interface(number)
        guard let claim = claims[number] else { throw .interfaceNotClaimed(number) }
        return claim
    }

    /// Checks a SET_INTERFACE: the interface claimed, the setting among its alternates.
    public func checkAltSetting(interface number: UInt8, altSetting: UInt8) throws(DeviceStateError) {
        let interface = try interface(number)
        _ = try claim(number)
        guard interface.altSettings.contains(where: { $0.alternateSetting == altSetting }) else {
            throw .altSettingNotFound(interface: number, altSetting: altSetting)
        }
    }

    /// Checks a SET_CONFIGURATION: a configuration the device has (nil: unconfigured), and no claims held.
    public func checkConfiguration(_ value: UInt8?) throws(DeviceStateError) {
        if let value, !configurations.contains(where: { $0.value == value }) {
            throw .configurationNotFound(value, available: configurations.map(\.value))
        }
        if !claims.isEmpty { throw .claimsHeld(claims.keys.sorted()) }
    }

    /// The endpoint at `address` if `use` may go ahead: it is in the current alternate setting
    /// of a claimed interface, with the direction and type that `use` needs (and, for an
    /// isochronous endpoint, room for packets: a zero-bandwidth setting has none).
    public func endpoint(_ address: UInt8, for use: EndpointUse) throws(DeviceStateError) -> EndpointDescriptor {
        guard address & 0x0f != 0 else { throw .controlEndpoint(address) }
        guard let active else { throw .unconfigured }
        for interface in active.interfaces {
            let altSetting = claims[interface.number]?.altSetting ?? 0
            guard let alt = interface.altSettings.first(where: { $0.alternateSetting == altSetting }),
                let endpoint = alt.endpoints.first(where: { $0.address == address })
            else { continue }
            guard claims[interface.number] != nil else { throw .interfaceNotClaimed(interface.number) }
            switch use {
            case .read where endpoint.direction != .in, .isoRead where endpoint.direction != .in:
                throw .wrongDirection(address, expected: .in)
            case .write where endpoint.direction != .out, .isoWrite where endpoint.direction != .out:
                throw .wrongDirection(address, expected: .out)
            default: break
            }
            switch use {
            case .read, .write:
                guard endpoint.transferType == .bulk || endpoint.transferType == .interrupt else {
                    throw .wrongType(address, endpoint.transferType)
                }
            case .isoRead, .isoWrite:
                guard endpoint.transferType == .isochronous else { throw .wrongType(address, endpoint.transferType) }
                if Self.maxIsoPacketBytes(endpoint) == 0 {
                    throw .endpointNotInAltSetting(
                        address, interface: interface.number, current: altSetting,
                        candidates: Self.altSettings(of: interface, carrying: address))
                }
            case .clearHalt: break
            }
            return endpoint
        }
        // Not in a current setting: perhaps in another alternate setting (an isochronous
        // endpoint usually is: setting 0 has no bandwidth).
        for interface in active.interfaces {
            let candidates = Self.altSettings(of: interface, carrying: address)
            if !candidates.isEmpty {
                throw .endpointNotInAltSetting(
                    address, interface: interface.number, current: claims[interface.number]?.altSetting ?? 0,
                    candidates: candidates)
            }
        }
        throw .endpointNotFound(address, configuration: active.value)
    }

    /// The alternate settings of `interface` that have endpoint `address` with room for packets.
    static func altSettings(of interface: Interface, carrying address: UInt8) -> [UInt8] {
        interface.altSettings.filter { alt in
            alt.endpoints.contains { $0.address == address && (($0.maxPacketSize & 0x7ff) > 0) }
        }.map(\.alternateSetting)
    }

    /// The most bytes one isochronous packet of `endpoint` may carry (per service interval):
    /// the SuperSpeed companion's wBytesPerInterval if there is one, else wMaxPacketSize's
    /// size times its transactions per microframe (bits 11-12, high-bandwidth endpoints).
    public static func maxIsoPacketBytes(_ endpoint: EndpointDescriptor) -> Int {
        let extra = endpoint.extra
        var offset = 0
        while offset + 1 < extra.count, extra[offset] >= 2 {
            // SuperSpeed endpoint companion: bLength 6, bDescriptorType 0x30, …, wBytesPerInterval.
            if extra[offset + 1] == 0x30 && extra[offset] >= 6 && offset + 5 < extra.count {
                return Int(extra[offset + 4]) | Int(extra[offset + 5]) << 8
            }
            offset += Int(extra[offset])
        }
        let size = Int(endpoint.maxPacketSize & 0x7ff)
        return size * (1 + Int((endpoint.maxPacketSize >> 11) & 0x3))
    }

    /// What one isochronous packet of endpoint `address` carries unless a request says
    /// otherwise: its bytes per interval in the current alternate setting (1 where it is not
    /// there, or has none: the checks before the URB then say what is wrong).
    public func defaultIsoPacketSize(_ address: UInt8) -> Int {
        max(currentEndpoint(address).map(Self.maxIsoPacketBytes) ?? 1, 1)
    }

    /// Checks the packets of one isochronous transfer: 1 to 128 of them (usbfs's limit per URB),
    /// none over what the endpoint carries per interval.
    public static func checkIsoPackets(_ lengths: [Int], for endpoint: EndpointDescriptor) throws(DeviceStateError) {
        guard (1...128).contains(lengths.count) else { throw .isoPacketCount(lengths.count, max: 128) }
        let most = maxIsoPacketBytes(endpoint)
        if let bad = lengths.first(where: { $0 < 0 || $0 > most }) {
            throw .isoPacketTooLarge(endpoint.address, length: bad, max: most)
        }
    }

    /// Endpoint `address` as the current alternate setting of its interface has it, if one does.
    public func currentEndpoint(_ address: UInt8) -> EndpointDescriptor? {
        guard let active else { return nil }
        for interface in active.interfaces {
            let altSetting = claims[interface.number]?.altSetting ?? 0
            if let alt = interface.altSettings.first(where: { $0.alternateSetting == altSetting }),
                let endpoint = alt.endpoints.first(where: { $0.address == address })
            {
                return endpoint
            }
        }
        return nil
    }

    /// The interface whose current alternate setting has endpoint `address`, if any.
    public func interface(ofEndpoint address: UInt8) -> UInt8? {
        guard let active else { return nil }
        for interface in active.interfaces {
            let altSetting = claims[interface.number]?.altSetting ?? 0
            if let alt = interface.altSettings.first(where: { $0.alternateSetting == altSetting }),
                alt.endpoints.contains(where: { $0.address == address })
            {
                return interface.number
            }
        }
        return nil
    }

    /// Checks that a stream's transfers are whole packets of `endpoint` (a device may fill each
    /// transfer); returns the packet size.
    public static func checkTransferSize(_ size: Int, for endpoint: EndpointDescriptor) throws(DeviceStateError) -> Int {
        let packet = Int(endpoint.maxPacketSize & 0x7ff)
        if packet > 0 && size % packet != 0 {
            throw .transferSizeNotPacketMultiple(size: size, maxPacketSize: packet)
        }
        return packet
    }

    mutating func claimed(_ claim: Claim) { claims[claim.interface] = claim }
    mutating func released(_ number: UInt8) { claims[number] = nil }
    mutating func altSettingSelected(interface: UInt8, altSetting: UInt8) { claims[interface]?.altSetting = altSetting }
    mutating func configured(_ value: UInt8?) { activeConfiguration = value }

    /// After a port reset every claimed interface is back at alternate setting 0.
    mutating func wasReset() {
        for number in claims.keys { claims[number]?.altSetting = 0 }
    }
}

/// Who holds a claim: an identity made once per holder (a URB channel), never made again in
/// the process (an object's address could be), compared and nothing else.
public struct ClaimOwner: Sendable, Hashable {
    private let value: UInt64
    private static let next = Atomic<UInt64>(1)

    /// A new identity.
    public init() { value = Self.next.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Why a request on a device may not go ahead: found before any URB is submitted.
public enum DeviceStateError: Error, Sendable, Equatable {
    case unconfigured
    case configurationNotFound(UInt8, available: [UInt8])
    case interfaceNotFound(UInt8, configuration: UInt8)
    case altSettingNotFound(interface: UInt8, altSetting: UInt8)
    case interfaceClaimed(UInt8)
    case interfaceNotClaimed(UInt8)
    case claimsHeld([UInt8])
    case controlEndpoint(UInt8)
    case endpointNotFound(UInt8, configuration: UInt8)
    case wrongDirection(UInt8, expected: Direction)
    case wrongType(UInt8, TransferType)
    /// A stream's transfer size that is not a whole number of the endpoint's packets.
    case transferSizeNotPacketMultiple(size: Int, maxPacketSize: Int)
    /// The endpoint is in other alternate settings (`candidates`) of `interface`, not in the
    /// current one (or has no bandwidth there).
    case endpointNotInAltSetting(UInt8, interface: UInt8, current: UInt8, candidates: [UInt8])
    /// An isochronous transfer with no packets or more than usbfs takes.
    case isoPacketCount(Int, max: Int)
    /// An isochronous packet longer than the endpoint carries per interval.
    case isoPacketTooLarge(UInt8, length: Int, max: Int)
}
