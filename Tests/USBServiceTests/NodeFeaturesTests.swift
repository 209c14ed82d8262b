import Foundation
import LinuxSystem
import Logging
import Testing
import USB

@testable import USBService

/// The labels of NFD's feature file, and the file kept current as devices come and go.
@Suite struct NodeFeaturesTests {
    static func keyboard(serial: String?, port: UInt8 = 1) -> USBDeviceInfo {
        var device = FakeCatalog.keyboard
        device.portPath = [port]
        device.id = USBDeviceInfo.id(bus: device.bus, portPath: device.portPath)
        if let serial {
            device.descriptor.serialNumberIndex = 9
            device.strings[9] = serial
        }
        return device
    }

    @Test func devicesAreCountedByVendorAndProductAndNamedBySerial() {
        let features = NodeFeatures(
            devices: [Self.keyboard(serial: "A1", port: 1), Self.keyboard(serial: nil, port: 2), FakeCatalog.hub], serials: true)
        #expect(features.labels == [
            "usbhttpd.devices": "2", "usbhttpd.usb-0627-0001": "2", "usbhttpd.serial-A1": "true",
        ], "root hubs are left out")
        let anonymous = NodeFeatures(devices: [Self.keyboard(serial: "A1")], serials: false)
        #expect(anonymous.labels == ["usbhttpd.devices": "1", "usbhttpd.usb-0627-0001": "1"])
        #expect(NodeFeatures(devices: [], serials: true).labels == ["usbhttpd.devices": "0"])
    }

    @Test(arguments: [
        "lab-ffs", "0123456789ABCDEF", "a b", "serial/1", "ends-with-", "ends.", "x\u{0}y", "ünïcode", "é",
        String(repeating: "7", count: 47), String(repeating: "7", count: 48), String(repeating: "ab_", count: 40), "\n",
    ])
    func everySerialMakesAValidLabelName(serial: String) {
        let name = NodeFeatures.serialLabel(serial)
        let bytes = Array(name.utf8)
        #expect(bytes.count <= 63, "\(name)")
        #expect(bytes.allSatisfy(NodeFeatures.isLabelByte), "\(name)")
        #expect(NodeFeatures.isAlphanumeric(bytes.first!) && NodeFeatures.isAlphanumeric(bytes.last!), "\(name)")
    }

    @Test func serialsThatNeedNoChangeKeepTheirNameAndOthersDoNotCollide() {
        #expect(NodeFeatures.serialLabel("lab-ffs") == "usbhttpd.serial-lab-ffs")
        #expect(NodeFeatures.serialLabel(String(repeating: "7", count: 47)) == "usbhttpd.serial-" + String(repeating: "7", count: 47))
        #expect(NodeFeatures.serialLabel("a b") != NodeFeatures.serialLabel("a/b"), "both become a_b but keep distinct hashes")
        #expect(NodeFeatures.serialLabel("a b").hasPrefix("usbhttpd.serial-a_b-"))
        let long = String(repeating: "x", count: 60)
        #expect(NodeFeatures.serialLabel(long) != NodeFeatures.serialLabel(long + "y"))
    }

    /// NFD reads at most 64 KiB of a file: past it, the serial labels are left out (said in
    /// the file), the counts stay.
    @Test func tooManySerialsForNFDAreLeftOut() {
        let devices = (1...40).map { Self.keyboard(serial: String(repeating: "s", count: 30) + "\($0)", port: UInt8($0)) }
        let fits = NodeFeatures(devices: devices, serials: true, limit: 4096)
        #expect(!fits.serialsLeftOut && fits.labels.count == 42)
        let over = NodeFeatures(devices: devices, serials: true, limit: 1024)
        #expect(over.serialsLeftOut && over.labels == ["usbhttpd.devices": "40", "usbhttpd.usb-0627-0001": "40"])
        #expect(over.text(node: nil, expiry: "x").contains("Serial labels left out"))
        #expect(NodeFeatures(devices: devices, serials: true).text(node: nil, expiry: "x").utf8.count < 65_536)
    }

    @Test func theFileSaysWhoWroteItWhenItExpiresAndTheLabelsInOrder() {
        let text = NodeFeatures(devices: [Self.keyboard(serial: "A1")], serials: true)
            .text(node: "bench-7", expiry: "2026-12-04T16:00:00.000Z")
        #expect(text == """
            # The USB devices usbhttpd serves on bench-7, rewritten on every arrival and removal.
            # +expiry-time=2026-12-04T16:00:00.000Z
            usbhttpd.devices=1
            usbhttpd.serial-A1=true
            usbhttpd.usb-0627-0001=1

            """)
    }

    @Test func aReplacementIsWholeAndLeavesNoTemporaryFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nfd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("usbhttpd").path
        try FileReplacement.replace(path, with: "one=1\n")
        try FileReplacement.replace(path, with: "two=2\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two=2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["usbhttpd"])
        try FileReplacement.remove(path)
        try FileReplacement.remove(path)  // already gone: no failure
        #expect(throws: (any Error).self) { try FileReplacement.replace(folder.path + "/missing/usbhttpd", with: "") }
        #expect(FileReplacement.temporaryTemplate(for: "/a/b/usbhttpd") == "/a/b/.usbhttpd.XXXXXX")
    }

    /// Issue 24, class 6: links planted in a folder others may write (the old fixed temporary
    /// name, the place itself) are replaced, never written through; the victim is untouched.
    @Test func linksPlantedBesideTheFileAreNeverFollowed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nfd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let victim = folder.appendingPathComponent("victim").path
        try "precious\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let path = folder.appendingPathComponent("usbhttpd").path
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/.usbhttpd.tmp", withDestinationPath: victim)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: victim)
        try FileReplacement.replace(path, with: "one=1\n")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "one=1\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular, "the link itself was replaced")
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
        try FileReplacement.remove(path)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == [".usbhttpd.tmp", "victim"])
    }

    @Test func theFileFollowsTheChangeLogAndIsRemovedAtTheEnd() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nfd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("usbhttpd").path
        let log = ChangeLog()
        let file = NodeFeatureFile(path: path, node: nil, serials: true, logger: Logger(label: "test"))
        let task = Task { await file.run(changes: log) }
        try await Self.waitFor(path, toContain: "usbhttpd.devices=0")
        log.append(.added, Self.keyboard(serial: "A1"))
        try await Self.waitFor(path, toContain: "usbhttpd.serial-A1=true")
        log.append(.removed, Self.keyboard(serial: "A1"))
        try await Self.waitFor(path, toContain: "usbhttpd.devices=0")
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("serial") == false)
        task.cancel()
        await task.value
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// A folder that is not there yet (NFD not installed when the daemon starts): the file is
    /// written at the next change once it is.
    @Test func aFileWhoseFolderComesLaterIsWrittenAtTheNextChange() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nfd-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("usbhttpd").path
        let log = ChangeLog()
        let file = NodeFeatureFile(path: path, node: nil, serials: true, logger: Logger(label: "test"))
        let task = Task { await file.run(changes: log) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        log.append(.added, Self.keyboard(serial: "B2"))
        try await Self.waitFor(path, toContain: "usbhttpd.serial-B2=true")
        task.cancel()
        await task.value
    }

    /// Polls the file until it holds `text` (10 s at most).
    static func waitFor(_ path: String, toContain text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let content = try? String(contentsOfFile: path, encoding: .utf8), content.contains(text) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("\(path) never held \(text)")
    }
}
