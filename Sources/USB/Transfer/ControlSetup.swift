/// The setup packet of a control transfer (USB 2.0 §9.3): bmRequestType's three parts,
/// bRequest, wValue, wIndex, wLength.
public struct ControlSetup: Sendable, Equatable {
    /// bmRequestType bits 5-6.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case standard = 0, `class` = 1, vendor = 2, reserved = 3

        public var name: String {
            switch self {
            case .standard: "standard"
            case .class: "class"
            case .vendor: "vendor"
            case .reserved: "reserved"
            }
        }
    }

    /// bmRequestType bits 0-4 (values 4-31 are reserved and refused).
    public enum Recipient: UInt8, Sendable, CaseIterable {
        case device = 0, interface = 1, endpoint = 2, other = 3

        public var name: String {
            switch self {
            case .device: "device"
            case .interface: "interface"
            case .endpoint: "endpoint"
            case .other: "other"
            }
        }
    }

    public var direction: Direction
    public var kind: Kind
    public var recipient: Recipient
    public var request: UInt8
    public var value: UInt16
    public var index: UInt16
    /// Bytes of the data stage: expected for IN, sent for OUT.
    public var length: UInt16

    public init(
        direction: Direction, kind: Kind, recipient: Recipient, request: UInt8, value: UInt16 = 0,
        index: UInt16 = 0, length: UInt16 = 0
    ) {
        self.direction = direction
        self.kind = kind
        self.recipient = recipient
        self.request = request
        self.value = value
        self.index = index
        self.length = length
    }

    /// Splits a bmRequestType byte; nil for a reserved recipient (4-31).
    public static func parts(of requestType: UInt8) -> (Direction, Kind, Recipient)? {
        guard let recipient = Recipient(rawValue: requestType & 0x1f) else { return nil }
        let kind = Kind(rawValue: (requestType >> 5) & 0x03)!
        return (requestType & 0x80 != 0 ? .in : .out, kind, recipient)
    }

    /// bmRequestType.
    public var requestType: UInt8 {
        (direction == .in ? 0x80 : 0) | kind.rawValue << 5 | recipient.rawValue
    }

    /// The 8 bytes on the wire, little-endian (what libusb_fill_control_setup writes).
    public var bytes: [UInt8] {
        [
            requestType, request, UInt8(value & 0xff), UInt8(value >> 8), UInt8(index & 0xff), UInt8(index >> 8),
            UInt8(length & 0xff), UInt8(length >> 8),
        ]
    }
}
