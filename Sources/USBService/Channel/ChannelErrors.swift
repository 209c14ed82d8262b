import HTTPServer
import USB

/// What the URB channel answers for an error of the checks and operations REST shares with it:
/// the libusb error a libusb program would get (`libusb_error`, negative), and a reason that
/// starts with the REST answer's status and problem code ("423 lease-held: …"), so that a client
/// can tell a lease from a stall without parsing prose, and raise what REST would.
enum ChannelErrors {
    static func libusb(_ error: any Error, device: String) -> (code: Int32, reason: String) {
        switch error {
        case let error as USBError:
            let problem = USBProblem.usb(error, context: "")
            return (error.rawValue, "\(problem.status) \(problem.code): \(error.description)")
        case let error as DeviceStateError:
            return (code(for: error), reason(DeviceStateProblem(error, device: device)))
        case let problem as DeviceStateProblem:
            return (code(for: problem.error), reason(problem))
        case let error as UsbfsBudget.Exhausted:
            return (USBError.noMemory.rawValue, reason(USBProblem.usbfsBudget(error)))
        case let problem as LeaseProblem:
            return (USBError.busy.rawValue, reason(problem))
        case let problem as AccessProblem:
            return (USBError.access.rawValue, reason(problem))
        case let problem as AuthProblem:
            return (USBError.access.rawValue, reason(problem))
        case let problem as TransferProblem:
            // Refused in every form: ACCESS, as the Python client maps REST's answer; a request
            // that has its own operation: NOT_SUPPORTED.
            if case .requestRefused = problem { return (USBError.access.rawValue, reason(problem)) }
            return (USBError.notSupported.rawValue, reason(problem))
        case let problem as USBProblem:
            switch problem {
            case .usb(let error, _): return (error.rawValue, reason(problem))
            case .kernelDriverBound: return (USBError.busy.rawValue, reason(problem))
            case .deviceRemoved, .deviceNotFound, .reenumerated: return (USBError.noDevice.rawValue, reason(problem))
            default: return (USBError.other.rawValue, reason(problem))
            }
        case let problem as any HTTPResponseError:
            return (USBError.other.rawValue, reason(problem))
        default:
            return (USBError.other.rawValue, "500 internal-error: \(error)")
        }
    }

    /// The libusb error for a state that does not allow a request.
    static func code(for error: DeviceStateError) -> Int32 {
        switch error {
        case .interfaceClaimed, .claimsHeld: USBError.busy.rawValue
        case .unconfigured, .configurationNotFound, .interfaceNotFound, .altSettingNotFound, .endpointNotFound,
            .interfaceNotClaimed, .endpointNotInAltSetting:
            USBError.notFound.rawValue
        case .controlEndpoint, .wrongDirection, .wrongType, .transferSizeNotPacketMultiple, .isoPacketCount,
            .isoPacketTooLarge:
            USBError.invalidParameter.rawValue
        }
    }

    static func reason(_ problem: any HTTPResponseError) -> String { "\(problem.status) \(problem.code): \(problem.detail)" }
}
