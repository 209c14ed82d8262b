import CLibUSB

/// A device libusb knows of (`libusb_device`), referenced while this value lives.
/// Reading its descriptors does no I/O: libusb caches them.
public final class USBDevice: @unchecked Sendable {
    // libusb_device is reference counted and safe to share between threads.
    let pointer: OpaquePointer
    let context: USBContext

    init(retaining pointer: OpaquePointer, context: USBContext) {
        self.pointer = libusb_ref_device(pointer)
        self.context = context
    }

    deinit { libusb_unref_device(pointer) }

    /// libusb_get_bus_number
    public var busNumber: UInt8 { libusb_get_bus_number(pointer) }
    /// libusb_get_device_address
    public var address: UInt8 { libusb_get_device_address(pointer) }
    /// libusb_get_device_speed
    public var speed: Speed { Speed(rawValue: libusb_get_device_speed(pointer)) ?? .unknown }

    /// The ports from the root hub down (libusb_get_port_numbers); empty for a root hub.
    public var portNumbers: [UInt8] {
        var ports = [UInt8](repeating: 0, count: 8)
        let count = libusb_get_port_numbers(pointer, &ports, Int32(ports.count))
        return count > 0 ? Array(ports.prefix(Int(count))) : []
    }

    /// libusb_get_device_descriptor
    public func deviceDescriptor() throws(USBError) -> DeviceDescriptor {
        var raw = libusb_device_descriptor()
        try USBError.check(libusb_get_device_descriptor(pointer, &raw))
        return DeviceDescriptor(
            bcdUSB: raw.bcdUSB, deviceClass: raw.bDeviceClass, deviceSubClass: raw.bDeviceSubClass,
            deviceProtocol: raw.bDeviceProtocol, maxPacketSize0: raw.bMaxPacketSize0, vendorID: raw.idVendor,
            productID: raw.idProduct, bcdDevice: raw.bcdDevice, manufacturerIndex: raw.iManufacturer,
            productIndex: raw.iProduct, serialNumberIndex: raw.iSerialNumber,
            numConfigurations: raw.bNumConfigurations)
    }

    /// The configuration at `index` (libusb_get_config_descriptor), 0-based.
    public func configurationDescriptor(index: UInt8) throws(USBError) -> ConfigurationDescriptor {
        var raw: UnsafeMutablePointer<libusb_config_descriptor>?
        try USBError.check(libusb_get_config_descriptor(pointer, index, &raw))
        guard let config = raw?.pointee else { throw .other }
        defer { libusb_free_config_descriptor(raw) }
        let interfaces = (0..<Int(config.bNumInterfaces)).compactMap { i -> Interface? in
            guard let interface = config.interface?[i] else { return nil }
            let alts = (0..<Int(interface.num_altsetting)).compactMap { a -> InterfaceDescriptor? in
                guard let alt = interface.altsetting?[a] else { return nil }
                let endpoints = (0..<Int(alt.bNumEndpoints)).compactMap { e -> EndpointDescriptor? in
                    guard let endpoint = alt.endpoint?[e] else { return nil }
                    return EndpointDescriptor(
                        address: endpoint.bEndpointAddress, attributes: endpoint.bmAttributes,
                        maxPacketSize: endpoint.wMaxPacketSize, interval: endpoint.bInterval,
                        extra: bytes(endpoint.extra, endpoint.extra_length))
                }
                return InterfaceDescriptor(
                    number: alt.bInterfaceNumber, alternateSetting: alt.bAlternateSetting,
                    interfaceClass: alt.bInterfaceClass, interfaceSubClass: alt.bInterfaceSubClass,
                    interfaceProtocol: alt.bInterfaceProtocol, stringIndex: alt.iInterface, endpoints: endpoints,
                    extra: bytes(alt.extra, alt.extra_length))
            }
            return Interface(number: alts.first?.number ?? UInt8(i), altSettings: alts)
        }
        return ConfigurationDescriptor(
            value: config.bConfigurationValue, stringIndex: config.iConfiguration, attributes: config.bmAttributes,
            maxPower: config.MaxPower, totalLength: config.wTotalLength, interfaces: interfaces,
            extra: bytes(config.extra, config.extra_length))
    }

    /// Opens the device (libusb_open).
    public func open() throws(USBError) -> USBDeviceHandle {
        var handle: OpaquePointer?
        try USBError.check(libusb_open(pointer, &handle))
        guard let handle else { throw .other }
        return USBDeviceHandle(pointer: handle, device: self)
    }
}

private func bytes(_ pointer: UnsafePointer<UInt8>?, _ count: Int32) -> [UInt8] {
    guard let pointer, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: pointer, count: Int(count)))
}
