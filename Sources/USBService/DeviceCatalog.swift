import USB

/// Where the API finds devices: the machine's USB stack (``USBHost``) in the daemon, a fixed
/// list in unit tests of the HTTP layer (which has no sessions: transfers need real devices).
public protocol DeviceCatalog: Sendable {
    /// Every device present now.
    func devices() async throws -> [USBDeviceInfo]
    /// The device with `id`, nil if absent.
    func device(id: String) async throws -> USBDeviceInfo?
    /// The raw descriptors of device `id` (device, then each configuration in full), nil if absent.
    func rawDescriptors(id: String) async throws -> [UInt8]?
    /// The open session of device `id`, nil if absent.
    func session(id: String) async throws -> DeviceSession?
    /// The session of device `id` if one is open now, at once (nil: ask ``session(id:)``).
    func openSession(id: String) -> DeviceSession?
    /// The device on port `port` of hub `hub` (nil: none), and whether the policy shows it.
    func portDevice(hub: String, port: UInt8) async -> (id: String, shown: Bool)?
    /// Every device plugged behind `id` (a hub, or a root hub "usbN"; with `including`, `id`
    /// too), each with whether the policy shows it: what a reset or a port request there drops.
    func devices(behind id: String, including: Bool) async -> [(id: String, shown: Bool)]
    /// Every device present now, at once, when the catalog knows nothing changed since its
    /// last look (nil: ask ``devices()``); with a number that changes whenever the list may.
    func freshDevices() -> (generation: Int, devices: [USBDeviceInfo])?
    /// When device `id` went away (seconds since the epoch); nil if present or never seen.
    func removedAt(id: String) async -> Double?
    /// Every arrival and removal, in order, and the devices they leave present.
    var changes: ChangeLog { get }
    /// Whether devices are followed (and by what), or why not.
    var readiness: (isReady: Bool, reason: String) { get async }
    /// Calls `body` with a device's id each time one of its interfaces is claimed or released.
    func afterClaimChange(_ body: @escaping @Sendable (String) -> Void)
}

extension DeviceCatalog {
    public func openSession(id: String) -> DeviceSession? { nil }
    public func freshDevices() -> (generation: Int, devices: [USBDeviceInfo])? { nil }
    public func portDevice(hub: String, port: UInt8) async -> (id: String, shown: Bool)? { nil }
    public func devices(behind id: String, including: Bool) async -> [(id: String, shown: Bool)] { [] }
    public func afterClaimChange(_ body: @escaping @Sendable (String) -> Void) {}
}

extension USBHost: DeviceCatalog {}
