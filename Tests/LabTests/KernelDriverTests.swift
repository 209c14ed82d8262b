import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Claiming an interface that a kernel driver holds: QEMU's USB keyboard, bound to usbhid.
    @Suite struct KernelDriverTests {
        @Test func claimDetachesTheKernelDriverAndReleaseAttachesItAgain() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(vendor: 0x0627, product: 0x0001)
            let driver = "/sys/bus/usb/devices/\(id):1.0/driver"
            #expect(try await lab.run("basename $(readlink \(driver))").contains("usbhid"))

            let claim = try await lab.post("/v1/devices/\(id)/interfaces/0/claim")
            #expect(claim.status == 200, "\(claim.text)")
            #expect(try claim.object()["kernel_driver_detached"] as? Bool == true)
            // libusb detaches and claims in one step (USBDEVFS_DISCONNECT_CLAIM): usbfs holds it now.
            #expect(try await lab.run("basename $(readlink \(driver))").contains("usbfs"), "usbhid is detached")

            // Interrupt IN from the keyboard: silent while no key is pressed.
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            let silent = try await lab.read(id, endpoint: interrupt, length: 8, timeout: 200)
            #expect(problemMismatch(silent, status: 504, code: "usb-timeout") == nil)

            let release = try await lab.daemon.request("DELETE", "/v1/devices/\(id)/interfaces/0/claim")
            #expect(release.status == 200, "\(release.text)")
            #expect(try await lab.run("basename $(readlink \(driver))").contains("usbhid"), "usbhid is back")
        }
    }
}
