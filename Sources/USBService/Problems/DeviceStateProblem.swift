import HTTPServer
import USB

/// A request that a device's state does not allow, found before any URB was submitted
/// (a ``DeviceStateError`` with its HTTP answer).
public struct DeviceStateProblem: HTTPResponseError, Sendable {
    public let error: DeviceStateError
    public let device: String

    public init(_ error: DeviceStateError, device: String) {
        self.error = error
        self.device = device
    }

    public var status: Int {
        switch error {
        case .unconfigured, .interfaceClaimed, .interfaceNotClaimed, .claimsHeld, .endpointNotInAltSetting: 409
        case .configurationNotFound, .interfaceNotFound, .altSettingNotFound, .endpointNotFound: 404
        case .controlEndpoint, .wrongDirection, .wrongType, .transferSizeNotPacketMultiple, .isoPacketCount,
            .isoPacketTooLarge:
            400
        }
    }

    public var code: String {
        switch error {
        case .unconfigured: "device-unconfigured"
        case .configurationNotFound: "configuration-not-found"
        case .interfaceNotFound: "interface-not-found"
        case .altSettingNotFound: "alt-setting-not-found"
        case .interfaceClaimed: "interface-claimed"
        case .interfaceNotClaimed: "interface-not-claimed"
        case .claimsHeld: "claims-held"
        case .controlEndpoint: "control-endpoint"
        case .endpointNotFound: "endpoint-not-found"
        case .wrongDirection: "wrong-endpoint-direction"
        case .wrongType: "wrong-endpoint-type"
        case .transferSizeNotPacketMultiple: "invalid-transfer-size"
        case .endpointNotInAltSetting: "endpoint-not-in-alt-setting"
        case .isoPacketCount: "invalid-packet-count"
        case .isoPacketTooLarge: "packet-too-large"
        }
    }

    public var title: String {
        switch error {
        case .unconfigured: "Device not configured"
        case .configurationNotFound: "No such configuration"
        case .interfaceNotFound: "No such interface"
        case .altSettingNotFound: "No such alternate setting"
        case .interfaceClaimed: "Interface already claimed"
        case .interfaceNotClaimed: "Interface not claimed"
        case .claimsHeld: "Interfaces still claimed"
        case .controlEndpoint: "Control endpoint"
        case .endpointNotFound: "No such endpoint"
        case .wrongDirection: "Wrong endpoint direction"
        case .wrongType: "Wrong endpoint type"
        case .transferSizeNotPacketMultiple: "Invalid transfer size"
        case .endpointNotInAltSetting: "Endpoint not in the current alternate setting"
        case .isoPacketCount: "Invalid packet count"
        case .isoPacketTooLarge: "Packet too large"
        }
    }

    public var detail: String {
        switch error {
        case .unconfigured:
            "Device \(device) has no active configuration: select one with PUT /v1/devices/\(device)/configuration."
        case .configurationNotFound(let value, let available):
            "Device \(device) has no configuration \(value); it has: \(available.map(String.init).joined(separator: ", "))."
        case .interfaceNotFound(let number, let configuration):
            "Configuration \(configuration) of device \(device) has no interface \(number)."
        case .altSettingNotFound(let interface, let altSetting):
            "Interface \(interface) of device \(device) has no alternate setting \(altSetting)."
        case .interfaceClaimed(let number):
            "Interface \(number) of device \(device) is already claimed; release it first (DELETE …/interfaces/\(number)/claim)."
        case .interfaceNotClaimed(let number):
            "Interface \(number) of device \(device) is not claimed: claim it first (POST /v1/devices/\(device)/interfaces/\(number)/claim)."
        case .claimsHeld(let numbers):
            "Release the claimed interfaces of device \(device) first: \(numbers.map(String.init).joined(separator: ", "))."
        case .controlEndpoint(let address):
            "Endpoint \(hex(address)) is the control endpoint: use POST /v1/devices/\(device)/control."
        case .endpointNotFound(let address, let configuration):
            "No interface of configuration \(configuration) of device \(device) has endpoint \(hex(address)) in its current alternate setting."
        case .wrongDirection(let address, let expected):
            expected == .in
                ? "Endpoint \(hex(address)) is an OUT endpoint: it cannot be read."
                : "Endpoint \(hex(address)) is an IN endpoint: it cannot be written."
        case .wrongType(let address, let type) where type == .isochronous:
            "Endpoint \(hex(address)) is an isochronous endpoint: use …/endpoints/\(hex(address))/iso or …/stream."
        case .wrongType(let address, let type):
            "Endpoint \(hex(address)) is a \(type.name) endpoint; …/iso serves isochronous endpoints only: use …/data or …/stream."
        case .transferSizeNotPacketMultiple(let size, let packet):
            "transfer_size=\(size) is not a multiple of the endpoint's \(packet)-byte packets (a device may fill each transfer)."
        case .endpointNotInAltSetting(let address, let interface, let current, let candidates):
            "Endpoint \(hex(address)) is not in alternate setting \(current) of interface \(interface) (or carries no data there); "
                + "it is in \(candidates.count == 1 ? "setting" : "settings") \(candidates.map(String.init).joined(separator: ", ")): "
                + "select one with PUT /v1/devices/\(device)/interfaces/\(interface)/alt-setting?value=\(candidates.first ?? 1)."
        case .isoPacketCount(let count, let most):
            "An isochronous transfer on device \(device) has 1 to \(most) packets (usbfs's limit per URB), not \(count); stream longer data with …/stream."
        case .isoPacketTooLarge(let address, let length, let most):
            "A \(length)-byte packet does not fit endpoint \(hex(address)), which carries at most \(most) bytes per interval."
        }
    }
}
