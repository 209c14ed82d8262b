import HTTPServer
import USB

/// Problems about finding a device and failed libusb calls (`libusb_error`), each with its
/// status and stable code. Transfer outcomes are ``TransferProblem``s; checks made before a
/// URB are ``DeviceStateProblem``s.
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
            case .noDevice, .notFound: 410
            case .access: 503
            case .busy: 409
            case .pipe: 409
            case .timeout: 504
            case .invalidParameter, .notSupported: 400
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
            case .noDevice, .notFound: "device-gone"
            case .access: "usb-access-denied"
            case .busy: "device-busy"
            case .pipe: "usb-stall"
            case .timeout: "usb-timeout"
            case .invalidParameter: "usb-invalid-parameter"
            case .notSupported: "usb-not-supported"
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
            case .noDevice, .notFound: "Device gone"
            case .access: "No access to the device"
            case .busy: "Device busy"
            case .pipe: "The device stalled"
            case .timeout: "USB timeout"
            case .invalidParameter: "libusb refused the parameters"
            case .notSupported: "Not supported"
            default: "USB error"
            }
        }
    }

    public var detail: String {
        switch self {
        case .invalidDeviceID(let id):
            "'\(id)' is not a device id: ids look like '1-2.3' (bus-ports) or 'usb1' (a root hub)."
        case .deviceNotFound(let id): "No device with id '\(id)' is present."
        case .usb(let error, let context):
            switch error {
            case .busy:
                "\(context): \(error). Another program or a kernel driver holds it, or an interface is still claimed."
            default: "\(context): \(error)."
            }
        }
    }
}
