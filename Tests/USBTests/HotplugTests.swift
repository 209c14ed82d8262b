import Foundation
import LinuxSystem
import Logging
import Synchronization
import SystemPackage
import Testing

@testable import USB

/// Kernel uevents, sysfs device records, and the roster that turns scans into changes.
@Suite struct HotplugTests {
    static func message(_ fields: [String]) -> [UInt8] {
        fields.flatMap { Array($0.utf8) + [0] }
    }

    @Test func aUEventIsParsed() throws {
        let event = try #require(
            UEvent(
                Self.message([
                    "remove@/devices/platform/dummy_hcd.0/usb1/1-1", "ACTION=remove",
                    "DEVPATH=/devices/platform/dummy_hcd.0/usb1/1-1", "SUBSYSTEM=usb", "DEVTYPE=usb_device",
                    "BUSNUM=001", "DEVNUM=002", "SEQNUM=828",
                ])))
        #expect(event.action == "remove")
        #expect(event.devicePath == "/devices/platform/dummy_hcd.0/usb1/1-1")
        #expect(event.properties["DEVNUM"] == "002")
        #expect(event.concernsUSBDevice)
    }

    @Test func interfacesOtherSubsystemsAndGarbageAreNotDeviceChanges() {
        let interface = UEvent(
            Self.message(["bind@/devices/x/1-1:1.0", "SUBSYSTEM=usb", "DEVTYPE=usb_interface"]))
        #expect(interface?.concernsUSBDevice == false)
        // A HID interface bound to its driver is one: its report descriptor can tell a security key.
        let hid = UEvent(
            Self.message(["bind@/devices/x/1-1:1.0", "SUBSYSTEM=usb", "DEVTYPE=usb_interface", "INTERFACE=3/0/0", "DRIVER=usbhid"]))
        #expect(hid?.concernsUSBDevice == true)
        let unbound = UEvent(Self.message(["unbind@/devices/x/1-1:1.0", "SUBSYSTEM=usb", "DEVTYPE=usb_interface", "INTERFACE=3/0/0"]))
        #expect(unbound?.concernsUSBDevice == false)
        // A USB serial adapter's tty coming or going is one (a console: the host rescans); another tty is not.
        let acm = UEvent(Self.message(["add@/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/tty/ttyACM0", "SUBSYSTEM=tty"]))
        #expect(acm?.concernsUSBDevice == true)
        let ftdi = UEvent(Self.message(["remove@/devices/pci0000:00/usb2/2-3/2-3:1.0/ttyUSB0/tty/ttyUSB0", "SUBSYSTEM=tty"]))
        #expect(ftdi?.concernsUSBDevice == true)
        let uart = UEvent(Self.message(["add@/devices/platform/serial8250/tty/ttyS0", "SUBSYSTEM=tty"]))
        #expect(uart?.concernsUSBDevice == false)
        let changed = UEvent(Self.message(["change@/devices/pci0000:00/usb1/1-1/1-1:1.0/tty/ttyACM0", "SUBSYSTEM=tty"]))
        #expect(changed?.concernsUSBDevice == false)
        let block = UEvent(Self.message(["add@/devices/x/block/sda", "SUBSYSTEM=block", "DEVTYPE=disk"]))
        #expect(block?.concernsUSBDevice == false)
        #expect(UEvent(Self.message(["libudev", "whatever"])) == nil)
        #expect(UEvent([UInt8]()) == nil)
    }

    @Test func deviceNamesGivePortPaths() {
        #expect(PortPath("usb3")?.ports == [] && PortPath("usb3")?.bus == 3)
        #expect(PortPath("1-1")?.ports == [1])
        #expect(PortPath("2-1.4.3")?.ports == [1, 4, 3])
        #expect(PortPath("255-255.1.2.3.4.5.6")?.description == "255-255.1.2.3.4.5.6")
        #expect(PortPath("usb12")?.description == "usb12")
        let notDevices = [
            "1-1:1.0", "1-0:1.0", "usbmon", "1-", "x-1", "1-1..2", "1-0", "usb", "1", "0-1", "usb0", "256-1", "1-256",
            "01-1", "1-01", "+1-1", "1-+1", "1-1-2", "1-1.2.3.4.5.6.7.8", "1-1.", "-1", "1-١", "usb 1", "1-1 ",
        ]
        for notADevice in notDevices {
            #expect(PortPath(notADevice) == nil, "\(notADevice)")
        }
        #expect(SysfsDevice.speed("480") == .high && SysfsDevice.speed("1.5") == .low)
        #expect(SysfsDevice.speed("5000") == .super && SysfsDevice.speed("weird") == .unknown)
    }

    /// A sysfs tree in a temporary folder, read as the real one.
    @Test func aDeviceIsReadFromItsSysfsFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("3-1.2")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let descriptors = DescriptorParserTests.device
        for (name, value) in [
            ("busnum", "3\n"), ("devnum", "7\n"), ("speed", "480\n"), ("bConfigurationValue", "1\n"),
            ("manufacturer", "usbhttpd lab\n"), ("serial", "lab-ffs\n"),
        ] {
            try Data(value.utf8).write(to: folder.appendingPathComponent(name))
        }
        try Data(descriptors).write(to: folder.appendingPathComponent("descriptors"))
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("3-1.2:1.0"), withIntermediateDirectories: true)

        var device = try #require(SysfsDevice(name: "3-1.2", root: root.path))
        #expect(device.bus == 3 && device.address == 7 && device.portPath == [1, 2] && device.speed == .high)
        #expect(device.activeConfiguration == 1 && device.manufacturer == "usbhttpd lab" && device.product == nil)
        #expect(device.serial == "lab-ffs" && device.rawDescriptors == descriptors)
        #expect(!device.isBound, "no driver link yet")
        #expect(device.nodePath == "/dev/bus/usb/003/007")
        try FileManager.default.createSymbolicLink(
            atPath: folder.appendingPathComponent("driver").path, withDestinationPath: "../../usb")
        device = try #require(SysfsDevice(name: "3-1.2", root: root.path))
        #expect(device.isBound)
        #expect(SysfsDevice.scan(root: root.path)?.map(\.name) == ["3-1.2"], "interfaces are not devices")
        #expect(SysfsDevice(name: "3-1.9", root: root.path) == nil)
    }

    static func sysfs(_ name: String, address: UInt8, bound: Bool = true, configuration: UInt8? = 1) -> SysfsDevice {
        SysfsDevice(
            name: name, bus: 1, address: address, portPath: PortPath(name)?.ports ?? [], speed: .high,
            rawDescriptors: DescriptorParserTests.device, activeConfiguration: configuration, manufacturer: "m",
            product: "p", serial: "s-\(name)", isBound: bound)
    }

    @Test func theRosterReportsArrivalsRemovalsAndReplugs() {
        var roster = DeviceRoster()
        let first = roster.update([Self.sysfs("1-2", address: 3), Self.sysfs("1-1", address: 2)])
        #expect(first.map(\.summary) == ["added 1-1", "added 1-2"])
        #expect(roster.devices.map(\.id) == ["1-1", "1-2"])
        #expect(roster["1-1"]?.info.serial == "s-1-1", "the sysfs strings fill the summary")

        #expect(roster.update([Self.sysfs("1-1", address: 2), Self.sysfs("1-2", address: 3)]).isEmpty)
        let replug = roster.update([Self.sysfs("1-1", address: 4), Self.sysfs("1-2", address: 3)])
        #expect(replug.map(\.summary) == ["removed 1-1", "added 1-1"], "a new address is a new device")
        let unplug = roster.update([Self.sysfs("1-2", address: 3, configuration: 2)])
        #expect(unplug.map(\.summary) == ["removed 1-1"])
        #expect(roster["1-2"]?.info.activeConfiguration == 2, "a new configuration is no new device")
    }

    @Test func aDeviceCountsOnlyOnceConfigured() {
        var roster = DeviceRoster()
        #expect(roster.update([Self.sysfs("1-1", address: 2, bound: false)]).isEmpty)
        #expect(roster.update([Self.sysfs("1-1", address: 2)]).map(\.summary) == ["added 1-1"])
    }

    @Test func oneDeviceIsRereadAloneUnlessItChanged() {
        var roster = DeviceRoster()
        _ = roster.update([Self.sysfs("1-1", address: 2)])
        var fine = roster.update(id: "1-1", Self.sysfs("1-1", address: 2, configuration: nil))
        #expect(fine && roster["1-1"]?.info.activeConfiguration == nil)
        fine = roster.update(id: "1-1", Self.sysfs("1-1", address: 5))
        #expect(!fine, "replugged: a whole scan is needed")
        fine = roster.update(id: "1-1", nil)
        #expect(!fine, "gone: a whole scan is needed")
        fine = roster.update(id: "9-9", nil)
        #expect(fine, "never seen and still absent")
        fine = roster.update(id: "1-3", Self.sysfs("1-3", address: 9))
        #expect(!fine, "new: a whole scan is needed")
    }

    @Test func unreadableDescriptorsLeaveTheDeviceOut() {
        var roster = DeviceRoster()
        var broken = Self.sysfs("1-1", address: 2)
        broken.rawDescriptors = [18, 1, 0]
        #expect(roster.update([broken]) == [.unreadable(id: "1-1", .truncated)])
        #expect(roster.devices.isEmpty)
    }
}

extension DeviceRoster.Change {
    var summary: String {
        switch self {
        case .added(let info): "added \(info.id)"
        case .removed(let info): "removed \(info.id)"
        case .unreadable(let id, _): "unreadable \(id)"
        }
    }
}

extension HotplugTests {
    /// A sysfs folder with device 1-1 on bus 1 at `devnum`, configured as `configuration` says.
    static func fakeSysfs(devnum: String, configuration: String) throws -> (root: URL, folder: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        let folder = root.appendingPathComponent("1-1")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, value) in [("busnum", "1\n"), ("devnum", devnum + "\n"), ("bConfigurationValue", configuration + "\n")] {
            try Data(value.utf8).write(to: folder.appendingPathComponent(name))
        }
        try Data(DescriptorParserTests.device).write(to: folder.appendingPathComponent("descriptors"))
        return (root, folder)
    }

    /// A known device at the same address is not read again, but its configuration and driver are.
    @Test func aScanRereadsOnlyWhatMayChangeOfAKnownDevice() throws {
        let (root, folder) = try Self.fakeSysfs(devnum: "2", configuration: "")
        defer { try? FileManager.default.removeItem(at: root) }
        var known = Self.sysfs("1-1", address: 2)
        known.manufacturer = "as read before"
        let same = try #require(SysfsDevice.scan(root: root.path, known: ["1-1": known])?.first)
        #expect(same.manufacturer == "as read before" && same.activeConfiguration == nil && !same.isBound)
        try Data("7\n".utf8).write(to: folder.appendingPathComponent("devnum"))
        let replugged = try #require(SysfsDevice.scan(root: root.path, known: ["1-1": known])?.first)
        #expect(replugged.address == 7 && replugged.manufacturer == nil, "a new address: read anew")
    }

    /// While its port resets, a device's `devnum` reads 0 (the kernel gives the address back
    /// after): the known device stays as it was (not a removal and an arrival at address 0,
    /// whose node would be `/dev/bus/usb/001/000`), an unknown one is not listed yet.
    @Test func aDeviceBeingResetKeepsItsAddress() throws {
        let (root, folder) = try Self.fakeSysfs(devnum: "0", configuration: "1")
        defer { try? FileManager.default.removeItem(at: root) }
        let known = Self.sysfs("1-1", address: 2)
        #expect(SysfsDevice.scan(root: root.path, known: ["1-1": known]) == [known], "kept as it was")
        #expect(SysfsDevice.scan(root: root.path)?.isEmpty == true, "an unknown one waits for its address")
        #expect(SysfsDevice(name: "1-1", root: root.path) == nil)
        var roster = DeviceRoster(policy: .allowAll)
        _ = roster.update([known])
        #expect(roster.update(SysfsDevice.scan(root: root.path, known: ["1-1": known]) ?? []).isEmpty)
        try Data("2\n".utf8).write(to: folder.appendingPathComponent("devnum"))
        #expect(SysfsDevice(name: "1-1", root: root.path)?.address == 2, "listed once it has one")
    }

    /// A folder or a device that cannot be read for a moment (descriptors running out) is not
    /// every device, or that device, leaving: the scan says it cannot tell, or keeps the device.
    @Test func aTransientReadFailureIsNotARemoval() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("1-1")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Files that exist but cannot be read (directories where files belong: read fails).
        for name in ["devnum", "descriptors", "busnum"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        let known = Self.sysfs("1-1", address: 2)
        #expect(SysfsDevice.scan(root: root.path, known: ["1-1": known]) == [known], "kept as it was")
        #expect(SysfsDevice.scan(root: root.path)?.isEmpty == true, "an unknown unreadable one is not made up")
        // A root that cannot be read at all (a file, not a folder): nil, not "no devices".
        let file = root.appendingPathComponent("not-a-folder")
        try Data().write(to: file)
        #expect(SysfsDevice.scan(root: file.path) == nil)
        #expect(SysfsDevice.scan(root: root.appendingPathComponent("absent").path) == [], "no USB at all")
        var roster = DeviceRoster(policy: .allowAll)
        _ = roster.update([known])
        #expect(roster.update(SysfsDevice.scan(root: root.path, known: ["1-1": known]) ?? []).isEmpty)
    }
}

/// The hot-plug thread's own failure is kept, not lost with the thread.
@Suite struct HotplugFailureTests {
    /// A source that is always readable and broken.
    struct BrokenSource: HotplugSource {
        let counter: EventCounter
        var descriptor: FileDescriptor { counter.descriptor }
        func drain(using buffer: inout [UInt8]) throws(Errno) -> Bool { throw .ioError }
        func close() throws(Errno) { try counter.close() }
    }

    @Test func aBrokenSourceStopsTheMonitorAndSaysWhy() async throws {
        let counter = try EventCounter.create()
        try counter.signal()
        let failures = Mutex(0)
        let monitor = try HotplugMonitor(
            source: .netlink, notices: BrokenSource(counter: counter), logger: Logger(label: "test"),
            onChange: {}, onFailure: { failures.withLock { $0 += 1 } })
        let deadline = ContinuousClock.now + .seconds(10)
        // The thread records the failure, logs it, then calls onFailure: wait for both.
        while monitor.failure == nil || failures.withLock({ $0 }) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(monitor.failure?.hasPrefix("netlink: ") == true, "\(monitor.failure ?? "no failure")")
        #expect(failures.withLock { $0 } == 1)
    }

    @Test func aStoppedMonitorHasNoFailure() async throws {
        let monitor = try HotplugMonitor(source: .polling, notices: nil, logger: Logger(label: "test"), onChange: {}, onFailure: {})
        monitor.stop()
        #expect(monitor.failure == nil)
    }
}
