import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// The Python client (clients/python) in the lab's guest against the lab's daemon: its lab
    /// tests (pytest), among them a PyUSB script run with PyUSB's libusb1 backend on the devices
    /// directly and then with usbhttpd.pyusb through the daemon, whose transcripts must match.
    /// script/python-client installs the client into the venv used here (script/test does).
    @Suite struct PythonClientTests {
        static let venv = LabSession.root.appendingPathComponent(".build-tools/pyclient/bin/python").path

        @Test func theClientAndThePyUSBBackendWorkOnTheLabsDevices() async throws {
            try #require(
                FileManager.default.isExecutableFile(atPath: Self.venv),
                "no \(Self.venv): run script/python-client (script/test does)")
            let lab = try await Lab.shared.session()
            // The native run claims the devices itself: the daemon must hold none of them.
            for serial in [LabSession.gadget, LabSession.sourceSink, LabSession.loopback] {
                try await lab.released(try await lab.deviceID(serial: serial))
            }
            try await lab.released(try await lab.deviceID(vendor: 0x0627, product: 0x0001))
            // The audio device's streaming interface, which the isochronous tests claim.
            let listing = try await lab.daemon.get("/v1/devices").object()
            let devices = listing["devices"] as? [[String: Any]] ?? []
            if let audio = devices.first(where: { $0["product"] as? String == "QEMU USB Audio" })?["id"] as? String {
                try await lab.released(audio, interface: 1)
            }
            // In the background: it takes a minute or two. --capture=sys: pytest's default capture
            // file is unlinked at once, and on the guest's 9p TMPDIR a truncate of an unlinked file
            // that was written to fails (ENOENT), failing every test after the first output.
            let (status, log) = try await lab.runDetached(
                """
                cd \(LabSession.root.path) && PYTHONDONTWRITEBYTECODE=1 USBHTTPD_URL=http://127.0.0.1:8080 \\
                  USBHTTPD_BINARY=\(LabSession.daemonBinary) \\
                  \(Self.venv) -m pytest -q -p no:cacheprovider --capture=sys clients/python/tests/lab
                """, name: "pyclient")
            #expect(status == "0", "pytest in the guest: status '\(status)'\n\(log)")
        }
    }
}
