import HTTPRouting
import USB

/// The filters of the device list: each given one must match.
struct DeviceFilter: Sendable, Equatable {
    static let parameterNames = ["id", "vendor_id", "product_id", "class", "serial"]

    var id: String?
    var vendorID: UInt16?
    var productID: UInt16?
    /// Matches the device class or the class of any interface of any configuration.
    var classCode: UInt8?
    var serial: String?

    init(id: String? = nil, vendorID: UInt16? = nil, productID: UInt16? = nil, classCode: UInt8? = nil, serial: String? = nil) {
        self.id = id
        self.vendorID = vendorID
        self.productID = productID
        self.classCode = classCode
        self.serial = serial
    }

    /// Reads the filters from a query; unknown names (beyond the route's `others`) and bad
    /// values throw 400 problems.
    init(query: QueryParameters, others: [String] = []) throws(RoutingProblem) {
        try query.allow(only: Self.parameterNames + others)
        if let id = query.string("id") {
            guard PortPath(id) != nil else {
                throw .invalidParameter(name: "id", value: id, expected: "a device id such as 1-2.3 or usb1")
            }
            self.id = id
        }
        vendorID = try query.integer("vendor_id", in: 0...0xffff).map(UInt16.init)
        productID = try query.integer("product_id", in: 0...0xffff).map(UInt16.init)
        if let text = query.string("class") {
            if let code = QueryParameters.parseInteger(text), (0...0xff).contains(code) {
                classCode = UInt8(code)
            } else if let code = ClassCode.code(named: text) {
                classCode = code
            } else {
                throw .invalidParameter(
                    name: "class", value: text,
                    expected: "a class code from 0 to 255 (decimal or 0x hex) or a class name such as hid")
            }
        }
        serial = query.string("serial")
    }

    /// No filter given: everything matches.
    var isEmpty: Bool { self == DeviceFilter() }

    func matches(_ device: USBDeviceInfo) -> Bool {
        if let id, device.id != id { return false }
        if let vendorID, device.descriptor.vendorID != vendorID { return false }
        if let productID, device.descriptor.productID != productID { return false }
        if let serial, device.serial != serial { return false }
        if let classCode, !device.hasClass(classCode) { return false }
        return true
    }
}
