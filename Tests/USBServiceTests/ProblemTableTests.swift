import Testing
import USB

@testable import USBService

/// The documented status and code of every transfer outcome and device-state problem.
@Suite struct ProblemTableTests {
    @Test(arguments: [
        (TransferStatus.stall, 409, "usb-stall"),
        (.timedOut, 504, "usb-timeout"),
        (.noDevice, 410, "device-gone"),
        (.cancelled, 503, "transfer-cancelled"),
        (.overflow, 502, "usb-overflow"),
        (.error, 502, "usb-transfer-error"),
    ])
    func transferOutcomes(status: TransferStatus, http: Int, code: String) {
        let problem = TransferProblem.outcome(status, context: "Reading", actualLength: 3)
        #expect(problem.status == http && problem.code == code)
        #expect(problem.headers["X-USB-Actual-Length"] == "3")
        #expect(problem.headers["X-USB-Transfer-Status"] == status.rawValue)
    }

    @Test(arguments: [
        (DeviceStateError.unconfigured, 409, "device-unconfigured"),
        (.configurationNotFound(3, available: [1]), 404, "configuration-not-found"),
        (.interfaceNotFound(4, configuration: 1), 404, "interface-not-found"),
        (.altSettingNotFound(interface: 0, altSetting: 2), 404, "alt-setting-not-found"),
        (.interfaceClaimed(0), 409, "interface-claimed"),
        (.interfaceNotClaimed(0), 409, "interface-not-claimed"),
        (.claimsHeld([0, 1]), 409, "claims-held"),
        (.controlEndpoint(0x80), 400, "control-endpoint"),
        (.endpointNotFound(0x85, configuration: 1), 404, "endpoint-not-found"),
        (.wrongDirection(0x02, expected: .in), 400, "wrong-endpoint-direction"),
        (.wrongType(0x83, .isochronous), 400, "wrong-endpoint-type"),
        (.transferSizeNotPacketMultiple(size: 1000, maxPacketSize: 512), 400, "invalid-transfer-size"),
        (.endpointNotInAltSetting(1, interface: 1, current: 0, candidates: [1, 2]), 409, "endpoint-not-in-alt-setting"),
        (.isoPacketCount(129, max: 128), 400, "invalid-packet-count"),
        (.isoPacketTooLarge(1, length: 4000, max: 192), 400, "packet-too-large"),
    ])
    func deviceStateProblems(error: DeviceStateError, http: Int, code: String) {
        let problem = DeviceStateProblem(error, device: "1-1")
        #expect(problem.status == http && problem.code == code)
        #expect(problem.detail.contains("1-1") || problem.detail.contains("0x") || problem.detail.contains("512"))
    }
}
