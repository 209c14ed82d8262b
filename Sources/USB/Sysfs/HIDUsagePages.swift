/// The usage pages a HID report descriptor declares (HID 1.11, 6.2.2: its Usage Page global
/// items), which say what a HID interface is beyond its class codes: a security key (FIDO
/// Alliance page 0xF1D0) looks like any other HID device in its interface descriptor.
public enum HIDUsagePages {
    /// The FIDO Alliance's page (CTAPHID: U2F and FIDO2 security keys).
    public static let fido: UInt32 = 0xF1D0

    /// Every Usage Page item's value in `report`; items cut short end the walk.
    public static func pages(in report: [UInt8]) -> Set<UInt32> {
        var pages: Set<UInt32> = []
        var at = 0
        while at < report.count {
            let prefix = report[at]
            if prefix == 0xFE {  // a long item: bDataSize, bLongItemTag, then its data
                guard at + 1 < report.count else { break }
                at += 3 + Int(report[at + 1])
                continue
            }
            let size = [0, 1, 2, 4][Int(prefix & 0x03)]
            guard at + 1 + size <= report.count else { break }
            if prefix & 0xFC == 0x04 {  // type global (1), tag Usage Page (0)
                var value: UInt32 = 0
                for (shift, byte) in report[(at + 1)..<(at + 1 + size)].enumerated() { value |= UInt32(byte) << (8 * shift) }
                pages.insert(value)
            }
            at += 1 + size
        }
        return pages
    }
}

extension Sysfs {
    /// The interfaces of `device`'s active configuration whose HID report descriptor (the HID
    /// driver's copy, `<interface>/<hid device>/report_descriptor`) declares the FIDO page,
    /// and whether every HID interface that is no boot device could be read (false while the
    /// HID driver has not bound yet, or when no HID driver is loaded).
    static func securityKeyInterfaces(device name: String, root: String) -> (keys: Set<UInt8>, complete: Bool) {
        guard let entries = entries(root + "/" + name) else { return ([], false) }
        var keys: Set<UInt8> = []
        // The device's driver link comes before its interfaces: none made yet is not "none".
        let interfaces = entries.filter { $0.hasPrefix(name + ":") }
        let expected = attribute(root + "/" + name + "/bNumInterfaces").flatMap { Int($0.drop { $0 == " " }) } ?? 0
        var complete = interfaces.count >= expected
        for entry in interfaces {
            let interface = root + "/" + name + "/" + entry
            guard attribute(interface + "/bInterfaceClass") == "03", attribute(interface + "/bInterfaceSubClass") != "01",
                let number = attribute(interface + "/bInterfaceNumber").flatMap({ UInt8($0, radix: 16) })
            else { continue }
            // The HID device the driver made: "BBBB:VVVV:PPPP.NNNN".
            guard let hid = Sysfs.entries(interface)?.first(where: { $0.count == 19 && $0.dropFirst(4).first == ":" }),
                let report = contents(interface + "/" + hid + "/report_descriptor", limit: 4096)
            else {
                complete = false
                continue
            }
            if HIDUsagePages.pages(in: report).contains(HIDUsagePages.fido) { keys.insert(number) }
        }
        return (keys, complete)
    }
}
