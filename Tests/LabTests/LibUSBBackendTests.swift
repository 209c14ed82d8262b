import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// libusb built with usbhttpd's backend (clients/libusb), in the lab's guest: unmodified
    /// programs (lsusb, dfu-util, a PyUSB script, python-libusb1, usbhid-dump, libusb's own
    /// examples) through a daemon the tests start there, each compared with the same program on
    /// the devices directly (clients/libusb/tests/lab, pytest). script/libusb-client builds the
    /// library and installs python-libusb1 into the venv used here (script/test does).
    @Suite struct LibUSBBackendTests {
        static let library = LabSession.root.appendingPathComponent(".build-libusb/lib").path
        static let examples = LabSession.root.appendingPathComponent(".build-libusb/examples").path

        @Test func unmodifiedLibusbProgramsWorkThroughTheDaemon() async throws {
            try #require(
                FileManager.default.fileExists(atPath: Self.library + "/libusb-1.0.so.0")
                    && FileManager.default.isExecutableFile(atPath: PythonClientTests.venv),
                "no \(Self.library)/libusb-1.0.so.0: run script/libusb-client (script/test does)")
            let lab = try await Lab.shared.session()
            // The native runs claim the devices themselves: the lab's daemon must hold none.
            for serial in [LabSession.gadget, LabSession.sourceSink, LabSession.loopback] {
                try await lab.released(try await lab.deviceID(serial: serial))
            }
            // The keyboard (usbhid-dump), the storage stick (xusb), the DFU board (dfu-util).
            for (vendor, product) in [(0x0627, 0x0001), (0x46f4, 0x0001), (0x1209, 0x0010)] {
                try await lab.released(try await lab.deviceID(vendor: vendor, product: product))
            }
            let (status, log) = try await lab.runDetached(
                """
                cd \(LabSession.root.path) && PYTHONDONTWRITEBYTECODE=1 LIBUSB_BACKEND_DIR=\(Self.library) \\
                  LIBUSB_EXAMPLES_DIR=\(Self.examples) USBHTTPD_BINARY=\(LabSession.daemonBinary) \\
                  \(PythonClientTests.venv) -m pytest -q -p no:cacheprovider --capture=sys clients/libusb/tests/lab
                """, name: "libusb-backend")
            #expect(status == "0", "pytest in the guest: status '\(status)'\n\(log)")
        }
    }
}
