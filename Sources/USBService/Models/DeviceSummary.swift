import USB

/// One entry of `GET /v1/devices`.
struct DeviceSummary: Encodable, Sendable {
    var id: String
    var bus: Int
    var address: Int
    var portPath: [Int]
    var speed: String
    var vendorId: Int
    var productId: Int
    /// The device class's name, null when the class is given per interface (code 0).
    var deviceClass: Nullable<String>
    var deviceClassCode: Int
    var manufacturer: Nullable<String>
    var product: Nullable<String>
    var serial: Nullable<String>
    /// The node (host) whose daemon serves the device (--node-name), null when not given: in a
    /// fleet, which bench a listing, a description or an event came from.
    var node: Nullable<String>

    init(_ info: USBDeviceInfo, node: String? = nil) {
        id = info.id
        bus = Int(info.bus)
        address = Int(info.address)
        portPath = info.portPath.map(Int.init)
        speed = info.speed.name
        vendorId = Int(info.descriptor.vendorID)
        productId = Int(info.descriptor.productID)
        deviceClass = Nullable(info.descriptor.deviceClass == 0 ? nil : ClassCode.name(info.descriptor.deviceClass))
        deviceClassCode = Int(info.descriptor.deviceClass)
        manufacturer = Nullable(info.manufacturer)
        product = Nullable(info.product)
        serial = Nullable(info.serial)
        self.node = Nullable(node)
    }
}

struct DeviceList: Encodable, Sendable {
    var devices: [DeviceSummary]
    /// A wait that claimed on the device that came back (`claim`): what it claimed.
    var claims: WaitClaims?

    /// The summaries of `devices`, served by the daemon of `node`.
    init(_ devices: [USBDeviceInfo], node: String?) {
        self.devices = devices.map { DeviceSummary($0, node: node) }
    }
}
