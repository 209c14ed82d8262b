import HTTPServer
import USB

/// A transfer that ran and did not complete (`libusb_transfer_status`), or a transfer request
/// whose parameters do not fit together.
public enum TransferProblem: HTTPResponseError, Sendable {
    /// The transfer ended with `status`; `actualLength` bytes had moved.
    case outcome(TransferStatus, context: String, actualLength: Int)
    /// An IN control request with data to send.
    case dataForIn
    /// `length` differs from the count of OUT data.
    case lengthMismatch(length: Int, dataCount: Int)
    /// More than 4096 bytes of control data.
    case controlDataTooLarge(count: Int)
    /// A standard request that would change what the daemon tracks (SET_CONFIGURATION, SET_INTERFACE).
    case useDedicatedRoute(request: String, route: String)
    /// A standard request that would break the device or the host's view of it.
    case requestRefused(request: String, why: String)

    public static let maxControlData = 4096

    public var status: Int {
        switch self {
        case .outcome(let status, _, _):
            switch status {
            case .stall: 409
            case .timedOut: 504
            case .noDevice: 410
            case .cancelled: 503
            case .overflow, .error, .completed: 502
            }
        case .dataForIn, .lengthMismatch, .useDedicatedRoute, .requestRefused: 400
        case .controlDataTooLarge: 413
        }
    }

    public var code: String {
        switch self {
        case .outcome(let status, _, _):
            switch status {
            case .stall: "usb-stall"
            case .timedOut: "usb-timeout"
            case .noDevice: "device-gone"
            case .cancelled: "transfer-cancelled"
            case .overflow: "usb-overflow"
            case .error, .completed: "usb-transfer-error"
            }
        case .dataForIn: "unexpected-data"
        case .lengthMismatch: "length-mismatch"
        case .controlDataTooLarge: "control-data-too-large"
        case .useDedicatedRoute: "use-dedicated-route"
        case .requestRefused: "request-refused"
        }
    }

    public var title: String {
        switch self {
        case .outcome(let status, _, _):
            switch status {
            case .stall: "The device stalled"
            case .timedOut: "USB timeout"
            case .noDevice: "Device gone"
            case .cancelled: "Transfer cancelled"
            case .overflow: "The device sent too much (babble)"
            case .error, .completed: "Transfer failed"
            }
        case .dataForIn: "Data for an IN request"
        case .lengthMismatch: "Length and data differ"
        case .controlDataTooLarge: "Control data too large"
        case .useDedicatedRoute: "Use the dedicated route"
        case .requestRefused: "Request refused"
        }
    }

    public var detail: String {
        switch self {
        case .outcome(let status, let context, let actualLength):
            switch status {
            case .stall: "\(context): the device answered STALL (a halted endpoint, or a request it refuses)."
            case .timedOut:
                "\(context): no answer within the timeout; \(actualLength) bytes had moved."
            case .noDevice: "\(context): the device is gone."
            case .cancelled: "\(context): the transfer was cancelled."
            case .overflow:
                "\(context): the device sent more than was asked for; ask for a multiple of the endpoint's packet size."
            case .error, .completed: "\(context): the transfer failed (LIBUSB_TRANSFER_ERROR)."
            }
        case .dataForIn: "An IN control request takes no data: send no body and no data_hex or data_base64."
        case .lengthMismatch(let length, let count):
            "'length=\(length)' differs from the \(count) bytes of data; leave length out for OUT requests."
        case .controlDataTooLarge(let count):
            "Control transfers carry at most \(Self.maxControlData) bytes of data; this one has \(count)."
        case .requestRefused(let request, let why): "\(request) is not sent through /control: \(why)."
        case .useDedicatedRoute(let request, let route):
            "\(request) changes state the daemon keeps; use \(route)."
        }
    }

    public var headers: HTTPHeaders {
        guard case .outcome(let status, _, let actualLength) = self else { return [:] }
        return TransferAnswer.headers(status: status, actualLength: actualLength)
    }
}
