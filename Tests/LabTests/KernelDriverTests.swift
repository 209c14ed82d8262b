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

        /// A daemon stopped (SIGTERM) while it holds a claim and a transfer is waiting:
        /// the transfer is cancelled, the process exits 0, and usbhid gets the keyboard back.
        @Test func stoppingTheDaemonGivesClaimedInterfacesBack() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(vendor: 0x0627, product: 0x0001)
            let interrupt = try await lab.endpoint(id, type: "interrupt", direction: "in")
            let driver = "/sys/bus/usb/devices/\(id):1.0/driver"
            let script = """
                B=http://127.0.0.1:8091/v1/devices/\(id)
                \(LabSession.daemonBinary) --host 127.0.0.1 --port 8091 --expose-risky-devices > "$TMPDIR/second.log" 2>&1 &
                pid=$!
                i=0; until curl -s -o /dev/null "$B"; do i=$((i + 1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
                curl -s -X POST "$B/interfaces/0/claim" > /dev/null
                echo "claimed: $(basename $(readlink \(driver)))"
                curl -s -o /dev/null "$B/endpoints/\(interrupt)/data?length=8&timeout_ms=60000" > /dev/null 2>&1 &
                sleep 0.5
                kill -TERM $pid
                wait $pid
                echo "exit: $?"
                echo "after: $(basename $(readlink \(driver)))"
                """
            let output = try await lab.run(script)
            #expect(output.contains("claimed: usbfs"), "\(output)")
            #expect(output.contains("exit: 0"), "\(output)")
            #expect(output.contains("after: usbhid"), "\(output)")
        }
    }
}
