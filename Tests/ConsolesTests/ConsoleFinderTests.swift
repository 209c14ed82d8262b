import Foundation
import Testing

@testable import Consoles

/// Consoles are found in sysfs as cdc_acm and the usb-serial drivers leave them; a name that
/// is not a plain tty is never a console.
@Suite struct ConsoleFinderTests {
    @Test func findsACMAndUSBSerialTTYsOfTheDevicesAsked() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("consoles-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        func folder(_ path: String) throws {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(path), withIntermediateDirectories: true)
        }
        func link(_ path: String, to target: String) throws {
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent(path).path, withDestinationPath: target)
        }
        try folder("1-1:1.0/tty/ttyACM0")
        try folder("1-1:1.1")
        try link("1-1:1.0/driver", to: "../../../bus/usb/drivers/cdc_acm")
        try folder("1-2:1.0/ttyUSB3/tty/ttyUSB3")
        try link("1-2:1.0/driver", to: "../../../bus/usb/drivers/ftdi_sio")
        try folder("1-3:1.0/tty/ttyACM1")
        try folder("1-4:1.0/tty/../evil")
        try folder("1-4:1.0/tty/tty")
        try folder("1-4:1.0/tty/ttyACM0x")
        try folder("1-4:1.0/ttyUSB9")  // no tty folder inside: not a port
        let found = ConsoleFinder.consoles(devices: ["1-1", "1-2", "1-4"], root: root.path)
        #expect(found == [
            ConsoleInfo(device: "1-1", interface: 0, tty: "ttyACM0", driver: "cdc_acm"),
            ConsoleInfo(device: "1-2", interface: 0, tty: "ttyUSB3", driver: "ftdi_sio"),
        ])
    }

    @Test(arguments: [
        ("ttyACM0", true), ("ttyUSB12", true), ("ttyS0", true), ("tty", false), ("ttyACM", false), ("tty0", false),
        ("ttyACM0x", false), ("../ttyACM0", false), ("pts/0", false), ("ttyACM0/", false), ("ttyÄ0", false),
    ])
    func onlyPlainTTYNamesCount(name: String, plain: Bool) {
        #expect(ConsoleFinder.isTTYName(name) == plain)
    }
}
