/// The device descriptor (`struct libusb_device_descriptor`), as values.
public struct DeviceDescriptor: Sendable, Equatable {
    public var bcdUSB: UInt16
    public var deviceClass: UInt8
    public var deviceSubClass: UInt8
    public var deviceProtocol: UInt8
    public var maxPacketSize0: UInt8
    public var vendorID: UInt16
    public var productID: UInt16
    public var bcdDevice: UInt16
    public var manufacturerIndex: UInt8
    public var productIndex: UInt8
    public var serialNumberIndex: UInt8
    public var numConfigurations: UInt8

    public init(
        bcdUSB: UInt16, deviceClass: UInt8, deviceSubClass: UInt8, deviceProtocol: UInt8, maxPacketSize0: UInt8,
        vendorID: UInt16, productID: UInt16, bcdDevice: UInt16, manufacturerIndex: UInt8, productIndex: UInt8,
        serialNumberIndex: UInt8, numConfigurations: UInt8
    ) {
        self.bcdUSB = bcdUSB
        self.deviceClass = deviceClass
        self.deviceSubClass = deviceSubClass
        self.deviceProtocol = deviceProtocol
        self.maxPacketSize0 = maxPacketSize0
        self.vendorID = vendorID
        self.productID = productID
        self.bcdDevice = bcdDevice
        self.manufacturerIndex = manufacturerIndex
        self.productIndex = productIndex
        self.serialNumberIndex = serialNumberIndex
        self.numConfigurations = numConfigurations
    }
}

/// A configuration descriptor with its interfaces (`struct libusb_config_descriptor`).
public struct ConfigurationDescriptor: Sendable, Equatable {
    public var value: UInt8
    public var stringIndex: UInt8
    public var attributes: UInt8
    /// bMaxPower as sent: units of 2 mA, or of 8 mA for SuperSpeed devices.
    public var maxPower: UInt8
    public var totalLength: UInt16
    public var interfaces: [Interface]
    /// Class- and vendor-specific descriptors that follow the configuration descriptor.
    public var extra: [UInt8]

    public init(
        value: UInt8, stringIndex: UInt8, attributes: UInt8, maxPower: UInt8, totalLength: UInt16,
        interfaces: [Interface], extra: [UInt8] = []
    ) {
        self.value = value
        self.stringIndex = stringIndex
        self.attributes = attributes
        self.maxPower = maxPower
        self.totalLength = totalLength
        self.interfaces = interfaces
        self.extra = extra
    }

    public var selfPowered: Bool { attributes & 0x40 != 0 }
    public var remoteWakeup: Bool { attributes & 0x20 != 0 }
}

/// One interface: its alternate settings (`struct libusb_interface`).
public struct Interface: Sendable, Equatable {
    public var number: UInt8
    public var altSettings: [InterfaceDescriptor]

    public init(number: UInt8, altSettings: [InterfaceDescriptor]) {
        self.number = number
        self.altSettings = altSettings
    }
}

/// One alternate setting of an interface (`struct libusb_interface_descriptor`).
public struct InterfaceDescriptor: Sendable, Equatable {
    public var number: UInt8
    public var alternateSetting: UInt8
    public var interfaceClass: UInt8
    public var interfaceSubClass: UInt8
    public var interfaceProtocol: UInt8
    public var stringIndex: UInt8
    public var endpoints: [EndpointDescriptor]
    public var extra: [UInt8]

    public init(
        number: UInt8, alternateSetting: UInt8, interfaceClass: UInt8, interfaceSubClass: UInt8,
        interfaceProtocol: UInt8, stringIndex: UInt8, endpoints: [EndpointDescriptor], extra: [UInt8] = []
    ) {
        self.number = number
        self.alternateSetting = alternateSetting
        self.interfaceClass = interfaceClass
        self.interfaceSubClass = interfaceSubClass
        self.interfaceProtocol = interfaceProtocol
        self.stringIndex = stringIndex
        self.endpoints = endpoints
        self.extra = extra
    }
}

/// An endpoint descriptor (`struct libusb_endpoint_descriptor`).
public struct EndpointDescriptor: Sendable, Equatable {
    public var address: UInt8
    public var attributes: UInt8
    /// wMaxPacketSize as sent (bits 11-12 carry extra transactions for high-bandwidth endpoints).
    public var maxPacketSize: UInt16
    public var interval: UInt8
    public var extra: [UInt8]

    public init(address: UInt8, attributes: UInt8, maxPacketSize: UInt16, interval: UInt8, extra: [UInt8] = []) {
        self.address = address
        self.attributes = attributes
        self.maxPacketSize = maxPacketSize
        self.interval = interval
        self.extra = extra
    }

    public var number: UInt8 { address & 0x0f }
    public var direction: Direction { address & 0x80 != 0 ? .in : .out }
    public var transferType: TransferType { TransferType(rawValue: attributes & 0x03)! }
}

public enum Direction: String, Sendable {
    case `in`, out
}

/// bmAttributes bits 0-1 of an endpoint (`enum libusb_endpoint_transfer_type`).
public enum TransferType: UInt8, Sendable {
    case control = 0, isochronous = 1, bulk = 2, interrupt = 3

    public var name: String {
        switch self {
        case .control: "control"
        case .isochronous: "isochronous"
        case .bulk: "bulk"
        case .interrupt: "interrupt"
        }
    }
}

/// The speed a device runs at (`enum libusb_speed`).
public enum Speed: Int32, Sendable {
    case unknown = 0, low = 1, full = 2, high = 3, `super` = 4, superPlus = 5

    public var name: String {
        switch self {
        case .unknown: "unknown"
        case .low: "low"
        case .full: "full"
        case .high: "high"
        case .super: "super"
        case .superPlus: "super_plus"
        }
    }

    /// The signalling rate in Mbit/s as lsusb prints it (1.5 for low speed), nil when unknown.
    public var megabits: Double? {
        switch self {
        case .unknown: nil
        case .low: 1.5
        case .full: 12
        case .high: 480
        case .super: 5000
        case .superPlus: 10000
        }
    }
}
