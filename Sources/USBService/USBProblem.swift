import HTTPServer
import USB

/// The problems of the USB API, each with its status and stable code.
public enum USBProblem: HTTPResponseError, Sendable {
    case invalidDeviceID(String)
    case deviceNotFound(String)
    case usb(USBError, context: String)

    public var status: Int {
        switch self {
        case .invalidDeviceID: 400
        case .deviceNotFound: 404
        case .usb(let error, _):
            switch error {
            case .noDevice: 410
            case .access: 503
            case .busy: 409
            case .timeout: 504
            default: 502
            }
        }
    }

    public var code: String {
        switch self {
        case .invalidDeviceID: "invalid-device-id"
        case .deviceNotFound: "device-not-found"
        case .usb(let error, _):
            switch error {
            case .noDevice: "device-gone"
            case .access: "usb-access-denied"
            case .busy: "device-busy"
            case .timeout: "usb-timeout"
            default: "usb-error"
            }
        }
    }

    public var title: String {
        switch self {
        case .invalidDeviceID: "Invalid device id"
        case .deviceNotFound: "Device not found"
        case .usb(let error, _):
            switch error {
            case .noDevice: "Device gone"
            case .access: "No access to the device"
            case .busy: "Device busy"
            case .timeout: "USB timeout"
            default: "USB error"
            }
        }
    }

    public var detail: String {
        switch self {
        case .invalidDeviceID(let id):
            "'\(id)' is not a device id: ids look like '1-2.3' (bus-ports) or 'usb1' (a root hub)."
        case .deviceNotFound(let id): "No device with id '\(id)' is present."
        case .usb(let error, let context): "\(context): \(error)."
        }
    }
}
