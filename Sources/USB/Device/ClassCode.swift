/// USB-IF base class codes (bDeviceClass, bInterfaceClass) and their names in the API.
public enum ClassCode {
    static let names: [UInt8: String] = [
        0x00: "per_interface", 0x01: "audio", 0x02: "communications", 0x03: "hid", 0x05: "physical",
        0x06: "image", 0x07: "printer", 0x08: "mass_storage", 0x09: "hub", 0x0a: "cdc_data",
        0x0b: "smart_card", 0x0d: "content_security", 0x0e: "video", 0x0f: "personal_healthcare",
        0x10: "audio_video", 0x11: "billboard", 0x12: "usb_c_bridge", 0x13: "bulk_display",
        0x14: "mctp", 0x3c: "i3c", 0xdc: "diagnostic", 0xe0: "wireless_controller",
        0xef: "miscellaneous", 0xfe: "application_specific", 0xff: "vendor_specific",
    ]

    /// The name of a base class, e.g. "hid" for 0x03; "class_0x42" for codes without one.
    public static func name(_ code: UInt8) -> String {
        names[code] ?? "class_0x" + String(code, radix: 16)
    }

    /// The code for a name from ``name(_:)``, nil for an unknown name.
    public static func code(named name: String) -> UInt8? {
        if let entry = names.first(where: { $0.value == name }) { return entry.key }
        if name.hasPrefix("class_0x"), let code = UInt8(name.dropFirst(8), radix: 16) { return code }
        return nil
    }
}
