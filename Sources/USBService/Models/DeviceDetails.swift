import USB

/// `GET /v1/devices/{id}`: the summary's fields, then the whole descriptor tree.
struct DeviceDetails: Encodable, Sendable {
    var summary: DeviceSummary
    var speedMbps: Nullable<Double>
    var activeConfiguration: Nullable<Int>
    var deviceDescriptor: DeviceDescriptorModel
    var configurations: [ConfigurationModel]
    /// Its serial consoles (``ConsoleModel``): empty for a device without.
    var consoles: [ConsoleModel] = []

    /// `drivers`: the kernel driver bound to each interface of the active configuration.
    init(_ info: USBDeviceInfo, node: String? = nil, drivers: [UInt8: String] = [:]) {
        summary = DeviceSummary(info, node: node)
        speedMbps = Nullable(info.speed.megabits)
        activeConfiguration = Nullable(info.activeConfiguration.map(Int.init))
        deviceDescriptor = DeviceDescriptorModel(info.descriptor)
        let superSpeed = info.descriptor.bcdUSB >= 0x0300
        configurations = info.configurations.map { configuration in
            let active = configuration.value == info.activeConfiguration
            return ConfigurationModel(configuration, info: info, superSpeed: superSpeed, drivers: active ? drivers : [:])
        }
    }

    private enum CodingKeys: String, CodingKey {
        case speedMbps, activeConfiguration, deviceDescriptor, configurations, consoles
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(speedMbps, forKey: .speedMbps)
        try container.encode(activeConfiguration, forKey: .activeConfiguration)
        try container.encode(deviceDescriptor, forKey: .deviceDescriptor)
        try container.encode(configurations, forKey: .configurations)
        try container.encode(consoles, forKey: .consoles)
    }
}

struct DeviceDescriptorModel: Encodable, Sendable {
    var bcdUsb: Int
    var usbVersion: String
    var deviceClass: Int
    var deviceSubclass: Int
    var deviceProtocol: Int
    var maxPacketSize0: Int
    var vendorId: Int
    var productId: Int
    var bcdDevice: Int
    var deviceVersion: String
    var manufacturerIndex: Int
    var productIndex: Int
    var serialNumberIndex: Int
    var numConfigurations: Int

    init(_ d: DeviceDescriptor) {
        bcdUsb = Int(d.bcdUSB)
        usbVersion = bcdString(d.bcdUSB)
        deviceClass = Int(d.deviceClass)
        deviceSubclass = Int(d.deviceSubClass)
        deviceProtocol = Int(d.deviceProtocol)
        maxPacketSize0 = Int(d.maxPacketSize0)
        vendorId = Int(d.vendorID)
        productId = Int(d.productID)
        bcdDevice = Int(d.bcdDevice)
        deviceVersion = bcdString(d.bcdDevice)
        manufacturerIndex = Int(d.manufacturerIndex)
        productIndex = Int(d.productIndex)
        serialNumberIndex = Int(d.serialNumberIndex)
        numConfigurations = Int(d.numConfigurations)
    }
}

struct ConfigurationModel: Encodable, Sendable {
    var value: Int
    var stringIndex: Int
    var string: Nullable<String>
    var attributes: Int
    var selfPowered: Bool
    var remoteWakeup: Bool
    var maxPowerMa: Int
    var totalLength: Int
    var extra: String
    var interfaces: [InterfaceModel]

    init(_ c: ConfigurationDescriptor, info: USBDeviceInfo, superSpeed: Bool, drivers: [UInt8: String]) {
        value = Int(c.value)
        stringIndex = Int(c.stringIndex)
        string = Nullable(info.string(c.stringIndex))
        attributes = Int(c.attributes)
        selfPowered = c.selfPowered
        remoteWakeup = c.remoteWakeup
        maxPowerMa = Int(c.maxPower) * (superSpeed ? 8 : 2)
        totalLength = Int(c.totalLength)
        extra = hex(c.extra)
        interfaces = c.interfaces.map { interface in
            InterfaceModel(
                number: Int(interface.number), driver: Nullable(drivers[interface.number]),
                altSettings: interface.altSettings.map { AltSettingModel($0, info: info) })
        }
    }
}

struct InterfaceModel: Encodable, Sendable {
    var number: Int
    /// The kernel driver bound to the interface now (usbhid, usb-storage…), null when none is
    /// or the configuration is not the active one. A claim detaches it unless `detach=false`.
    var driver: Nullable<String>
    var altSettings: [AltSettingModel]
}

struct AltSettingModel: Encodable, Sendable {
    var interfaceNumber: Int
    var alternateSetting: Int
    var interfaceClass: Int
    var interfaceClassName: String
    var interfaceSubclass: Int
    var interfaceProtocol: Int
    var stringIndex: Int
    var string: Nullable<String>
    var extra: String
    var endpoints: [EndpointModel]

    init(_ a: InterfaceDescriptor, info: USBDeviceInfo) {
        interfaceNumber = Int(a.number)
        alternateSetting = Int(a.alternateSetting)
        interfaceClass = Int(a.interfaceClass)
        interfaceClassName = ClassCode.name(a.interfaceClass)
        interfaceSubclass = Int(a.interfaceSubClass)
        interfaceProtocol = Int(a.interfaceProtocol)
        stringIndex = Int(a.stringIndex)
        string = Nullable(info.string(a.stringIndex))
        extra = hex(a.extra)
        endpoints = a.endpoints.map(EndpointModel.init)
    }
}

struct EndpointModel: Encodable, Sendable {
    var address: Int
    var number: Int
    var direction: String
    var transferType: String
    var attributes: Int
    var maxPacketSize: Int
    var interval: Int
    var extra: String

    init(_ e: EndpointDescriptor) {
        address = Int(e.address)
        number = Int(e.number)
        direction = e.direction.rawValue
        transferType = e.transferType.name
        attributes = Int(e.attributes)
        maxPacketSize = Int(e.maxPacketSize)
        interval = Int(e.interval)
        extra = hex(e.extra)
    }
}

/// "2.00" for 0x0200: binary-coded decimal as lsusb prints it.
func bcdString(_ value: UInt16) -> String {
    let major = String(value >> 8, radix: 16)
    let minor = String(value & 0xff, radix: 16)
    return major + "." + (minor.count == 1 ? "0" + minor : minor)
}
