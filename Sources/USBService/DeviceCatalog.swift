import USB

/// Where the API reads devices from: the machine's USB stack (``USBHost``) in the daemon,
/// a fixed list in unit tests of the HTTP layer.
public protocol DeviceCatalog: Sendable {
    /// Every device present now.
    func devices() async throws -> [USBDeviceInfo]
    /// The device with `id`, nil if absent.
    func device(id: String) async throws -> USBDeviceInfo?
    /// The raw descriptors of device `id` (device, then each configuration in full), nil if absent.
    func rawDescriptors(id: String) async throws -> [UInt8]?
}

extension USBHost: DeviceCatalog {}
