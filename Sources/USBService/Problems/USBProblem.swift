import HTTPServer
import USB

/// Problems about finding a device and failed libusb calls (`libusb_error`), each with its
/// status and stable code. Transfer outcomes are ``TransferProblem``s; checks made before a
/// URB are ``DeviceStateProblem``s.
public enum USBProblem: HTTPResponseError, Sendable {
    case invalidDeviceID(String)
    case deviceNotFound(String)
    /// Device `id` was present and went away at `time` (seconds since the epoch).
    case deviceRemoved(String, time: Double)
    case serialNotFound(String)
    /// More than one present device has this serial number: address them by id.
    case ambiguousSerial(String, ids: [String])
    /// Device `id` is a root hub (part of the host controller): it cannot be `action`.
    case rootHub(String, action: String)
    case usb(USBError, context: String)
    /// The request named the device's address (`X-USB-Device-Address`) and device `id` now has
    /// another: it enumerated again (a reset, a firmware update, a replug) since the client looked.
    case reenumerated(String, expected: UInt8, now: UInt8)
    /// A claim asked not to detach a kernel driver (`detach=false`) and `driver` has the interface.
    case kernelDriverBound(String, interface: UInt8, driver: String)
    /// `X-USB-Device-Address` is not a device address (1-127).
    case invalidAddress(String)
    /// The daemon's share of usbfs memory is taken (``UsbfsBudget``).
    case usbfsBudget(UsbfsBudget.Exhausted)

    public var status: Int {
        switch self {
        case .invalidDeviceID, .rootHub, .invalidAddress: 400
        case .deviceNotFound, .serialNotFound: 404
        case .deviceRemoved, .reenumerated: 410
        case .ambiguousSerial, .kernelDriverBound: 409
        case .usbfsBudget: 503
        case .usb(let error, _):
            switch error {
            case .noDevice, .notFound: 410
            case .access, .noMemory: 503
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
        case .deviceNotFound, .serialNotFound: "device-not-found"
        case .deviceRemoved: "device-gone"
        case .ambiguousSerial: "ambiguous-serial"
        case .rootHub: "root-hub"
        case .usbfsBudget: "usbfs-budget-exhausted"
        case .reenumerated: "device-reenumerated"
        case .kernelDriverBound: "device-busy"
        case .invalidAddress: "invalid-header"
        case .usb(let error, _):
            switch error {
            case .noDevice, .notFound: "device-gone"
            case .access: "usb-access-denied"
            case .noMemory: "usb-out-of-memory"
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
        case .deviceNotFound, .serialNotFound: "Device not found"
        case .deviceRemoved: "Device gone"
        case .ambiguousSerial: "Serial number not unique"
        case .rootHub: "A root hub"
        case .usbfsBudget: "USB memory taken"
        case .reenumerated: "Device enumerated again"
        case .kernelDriverBound: "Device busy"
        case .invalidAddress: "Invalid header"
        case .usb(let error, _):
            switch error {
            case .noDevice, .notFound: "Device gone"
            case .access: "No access to the device"
            case .noMemory: "Out of USB memory"
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
            "'\(id)' is not a device id: ids look like '1-2.3' (bus-ports), 'usb1' (a root hub) or 'serial:ABC123'."
        case .deviceNotFound(let id): "No device with id '\(id)' is present."
        case .deviceRemoved(let id, let time):
            "Device '\(id)' was removed at \(Timestamp.iso8601(time)) and is not back."
        case .serialNotFound(let serial): "No present device has serial number '\(serial)'."
        case .rootHub(let id, let action): "\(id) is a root hub, part of the host controller: it cannot be \(action)."
        case .ambiguousSerial(let serial, let ids):
            "Devices \(ids.joined(separator: ", ")) all have serial number '\(serial)': address one by its id."
        case .usbfsBudget(let exhausted) where exhausted.client:
            "This needs \(exhausted.wanted) bytes of USB transfer memory and \(exhausted.free) of your \(exhausted.limit) are free (each client's share, --usbfs-client-share-mb); end a stream or transfer of yours first."
        case .usbfsBudget(let exhausted):
            "This needs \(exhausted.wanted) bytes of USB transfer memory and \(exhausted.free) of the daemon's \(exhausted.limit) are free (--usbfs-budget-mb); try again when a stream or transfer ends."
        case .reenumerated(let id, let expected, let now):
            "Device '\(id)' had address \(expected) and has \(now) now: it enumerated again (reset, firmware update or replug). Look it up again (GET /v1/devices/\(id)) before driving it."
        case .kernelDriverBound(let id, let interface, let driver):
            "Interface \(interface) of \(id) is bound to kernel driver '\(driver)' and the claim asked not to detach it (detach=false)."
        case .invalidAddress(let value):
            "X-USB-Device-Address '\(value)' is not a device address: give the device's 'address' (1-127) from GET /v1/devices."
        case .usb(let error, let context):
            switch error {
            case .noMemory:
                "\(context): \(error). The kernel's USB memory (usbfs_memory_mb) is taken, by this daemon or other programs; try again later."
            case .busy:
                "\(context): \(error). Another program or a kernel driver holds it, or an interface is still claimed."
            default: "\(context): \(error)."
            }
        }
    }

    /// Memory that others hold comes back: try again in a second.
    public var headers: HTTPHeaders {
        switch self {
        case .usbfsBudget, .usb(.noMemory, _): ["Retry-After": "1"]
        default: [:]
        }
    }

}
