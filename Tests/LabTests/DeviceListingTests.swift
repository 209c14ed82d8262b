import Foundation
import Testing
import TestSupport

/// `GET /v1/devices` and `GET /v1/devices/{id}` from the real daemon in the lab, field by
/// field against what `lsusb -v` and sysfs say about every device there.
extension InTheLab {
@Suite struct DeviceListingTests {
    func devices(_ lab: LabSession, query: String = "") async throws -> [[String: Any]] {
        let result = try await lab.daemon.get("/v1/devices" + query)
        #expect(result.status == 200, "\(result.text)")
        #expect(result.contentType == "application/json")
        return try #require(try result.object()["devices"] as? [[String: Any]])
    }

    @Test func everyLsusbDeviceIsListedWithTheSameFields() async throws {
        let lab = try await Lab.shared.session()
        let lsusb = Lsusb(parsing: try await lab.run("lsusb -v 2>/dev/null"))
        let listed = try await devices(lab)
        #expect(lsusb.devices.count == 16, "the lab plays 16 devices (lab/lab: EXPECT_DEVICES)")
        #expect(listed.count == lsusb.devices.count)
        for device in lsusb.devices {
            let entry = try #require(
                listed.first { $0["bus"] as? Int == device.bus && $0["address"] as? Int == device.address },
                "bus \(device.bus) address \(device.address) is not listed")
            let id = entry["id"] as? String ?? "?"
            #expect(entry["vendor_id"] as? Int == Lsusb.number(device.fields["idVendor"]), "\(id)")
            #expect(entry["product_id"] as? Int == Lsusb.number(device.fields["idProduct"]), "\(id)")
            let classCode = Lsusb.number(device.fields["bDeviceClass"])
            #expect(entry["device_class_code"] as? Int == classCode, "\(id)")
            #expect((entry["device_class"] is NSNull) == (classCode == 0), "\(id): device_class null iff code 0")
            for (key, field) in [("manufacturer", "iManufacturer"), ("product", "iProduct"), ("serial", "iSerial")] {
                let expected = Lsusb.indexedString(device.fields[field])?.1
                #expect(entry[key] as? String == expected, "\(id).\(key)")
                if expected == nil { #expect(entry[key] is NSNull, "\(id).\(key) is null when absent") }
            }
            for key in ["id", "bus", "address", "port_path", "speed", "vendor_id", "product_id", "device_class"] {
                #expect(entry[key] != nil, "\(id) has \(key)")
            }
        }
    }

    @Test func descriptorTreesMatchLsusb() async throws {
        let lab = try await Lab.shared.session()
        let lsusb = Lsusb(parsing: try await lab.run("lsusb -v 2>/dev/null"))
        let listed = try await devices(lab)
        for device in lsusb.devices {
            let id = try #require(
                listed.first { $0["bus"] as? Int == device.bus && $0["address"] as? Int == device.address }?["id"]
                    as? String)
            let result = try await lab.daemon.get("/v1/devices/\(id)")
            #expect(result.status == 200)
            let details = try result.object()
            let descriptor = try #require(details["device_descriptor"] as? [String: Any])
            let f = device.fields
            #expect(descriptor["usb_version"] as? String == f["bcdUSB"], "\(id) bcdUSB")
            #expect(descriptor["device_version"] as? String == f["bcdDevice"], "\(id) bcdDevice")
            for (key, field) in [
                ("device_class", "bDeviceClass"), ("device_subclass", "bDeviceSubClass"),
                ("device_protocol", "bDeviceProtocol"), ("max_packet_size0", "bMaxPacketSize0"),
                ("vendor_id", "idVendor"), ("product_id", "idProduct"), ("num_configurations", "bNumConfigurations"),
            ] {
                #expect(descriptor[key] as? Int == Lsusb.number(f[field]), "\(id) \(field)")
            }
            for (key, field) in [
                ("manufacturer_index", "iManufacturer"), ("product_index", "iProduct"),
                ("serial_number_index", "iSerial"),
            ] {
                #expect(descriptor[key] as? Int == Lsusb.indexedString(f[field])?.0, "\(id) \(field)")
            }

            let configurations = try #require(details["configurations"] as? [[String: Any]])
            #expect(configurations.count == device.configurations.count, "\(id) configurations")
            for (ours, theirs) in zip(configurations, device.configurations) {
                try compare(configuration: ours, with: theirs, device: id)
            }
            let active = details["active_configuration"] as? Int
            #expect(active == 1, "\(id): every lab device is configured")
        }
    }

    func compare(configuration ours: [String: Any], with theirs: Lsusb.Configuration, device id: String) throws {
        let f = theirs.fields
        #expect(ours["value"] as? Int == Lsusb.number(f["bConfigurationValue"]), "\(id) bConfigurationValue")
        #expect(ours["total_length"] as? Int == Lsusb.number(f["wTotalLength"]), "\(id) wTotalLength")
        #expect(ours["attributes"] as? Int == Lsusb.number(f["bmAttributes"]), "\(id) bmAttributes")
        #expect(ours["max_power_ma"] as? Int == Lsusb.number(f["MaxPower"]), "\(id) MaxPower")
        let (index, text) = try #require(Lsusb.indexedString(f["iConfiguration"]))
        #expect(ours["string_index"] as? Int == index, "\(id) iConfiguration")
        #expect(ours["string"] as? String == text, "\(id) configuration string")
        let interfaces = try #require(ours["interfaces"] as? [[String: Any]])
        #expect(interfaces.count == Lsusb.number(f["bNumInterfaces"]), "\(id) bNumInterfaces")
        let alts = interfaces.flatMap { $0["alt_settings"] as? [[String: Any]] ?? [] }
        #expect(alts.count == theirs.interfaces.count, "\(id) interface descriptors")
        for (alt, lsusbAlt) in zip(alts, theirs.interfaces) {
            let g = lsusbAlt.fields
            for (key, field) in [
                ("interface_number", "bInterfaceNumber"), ("alternate_setting", "bAlternateSetting"),
                ("interface_class", "bInterfaceClass"), ("interface_subclass", "bInterfaceSubClass"),
                ("interface_protocol", "bInterfaceProtocol"),
            ] {
                #expect(alt[key] as? Int == Lsusb.number(g[field]), "\(id) \(field)")
            }
            let (index, text) = try #require(Lsusb.indexedString(g["iInterface"]))
            #expect(alt["string_index"] as? Int == index, "\(id) iInterface")
            #expect(alt["string"] as? String == text, "\(id) interface string")
            let endpoints = try #require(alt["endpoints"] as? [[String: Any]])
            #expect(endpoints.count == Lsusb.number(g["bNumEndpoints"]), "\(id) bNumEndpoints")
            #expect(endpoints.count == lsusbAlt.endpoints.count)
            for (endpoint, e) in zip(endpoints, lsusbAlt.endpoints) {
                let address = Lsusb.number(e["bEndpointAddress"])
                #expect(endpoint["address"] as? Int == address, "\(id) bEndpointAddress")
                #expect(endpoint["direction"] as? String == ((address ?? 0) & 0x80 != 0 ? "in" : "out"))
                #expect(endpoint["attributes"] as? Int == Lsusb.number(e["bmAttributes"]), "\(id) bmAttributes")
                #expect(endpoint["transfer_type"] as? String == e["Transfer Type"]?.lowercased(), "\(id) type")
                #expect(endpoint["max_packet_size"] as? Int == Lsusb.number(e["wMaxPacketSize"]), "\(id) wMaxPacketSize")
                #expect(endpoint["interval"] as? Int == Lsusb.number(e["bInterval"]), "\(id) bInterval")
            }
        }
    }

    /// Ids are Linux's own names for the ports; bus, address and speed agree with sysfs.
    @Test func idsNamePortsAsSysfsDoes() async throws {
        let lab = try await Lab.shared.session()
        let speeds = ["1.5": "low", "12": "full", "480": "high", "5000": "super", "10000": "super_plus"]
        for entry in try await devices(lab) {
            let id = try #require(entry["id"] as? String)
            let sysfs = try await lab.run(
                "cd /sys/bus/usb/devices/\(id) && cat busnum devnum speed && (cat devpath 2>/dev/null || echo)")
            let lines = sysfs.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            #expect(Int(lines[0]) == entry["bus"] as? Int, "\(id) busnum")
            #expect(Int(lines[1]) == entry["address"] as? Int, "\(id) devnum")
            #expect(speeds[lines[2]] == entry["speed"] as? String, "\(id) speed \(lines[2])")
            let ports = (entry["port_path"] as? [Int] ?? []).map(String.init).joined(separator: ".")
            #expect(ports == (lines[3] == "0" ? "" : lines[3]), "\(id) devpath")
            #expect(id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }, "\(id) is URL-safe")
        }
    }

    /// The raw descriptors, read from the device, equal the kernel's copy in sysfs.
    @Test func rawDescriptorsEqualSysfs() async throws {
        let lab = try await Lab.shared.session()
        for entry in try await devices(lab) {
            let id = try #require(entry["id"] as? String)
            let result = try await lab.daemon.get("/v1/devices/\(id)/descriptors/raw")
            #expect(result.status == 200)
            #expect(result.contentType == "application/octet-stream")
            let sysfs = try await lab.run("base64 -w0 /sys/bus/usb/devices/\(id)/descriptors")
            #expect(Data(result.body).base64EncodedString() == sysfs, "\(id)")
            let active = try await lab.run("cat /sys/bus/usb/devices/\(id)/bConfigurationValue")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(result.header("X-USB-Configuration") == (active.isEmpty ? "0" : active), "\(id)")
        }
    }

    @Test func theLabHasEveryKindOfDevice() async throws {
        let lab = try await Lab.shared.session()
        let all = try await devices(lab)
        let products = Set(all.compactMap { $0["product"] as? String })
        for name in ["SourceSink", "Loopback", "usbhttpd lab gadget", "QEMU USB Keyboard", "QEMU USB HARDDRIVE",
                     "QEMU USB Audio", "QEMU USB Hub"] {
            #expect(products.contains(name), "\(name) is in the lab")
        }
        // The FunctionFS gadget: a vendor interface with interrupt IN, bulk IN and bulk OUT.
        let gadget = try #require(all.first { $0["serial"] as? String == "lab-ffs" })
        let details = try await lab.daemon.get("/v1/devices/\(gadget["id"] as? String ?? "")").object()
        let configuration = try #require((details["configurations"] as? [[String: Any]])?.first)
        let interface = try #require((configuration["interfaces"] as? [[String: Any]])?.first)
        let alt = try #require((interface["alt_settings"] as? [[String: Any]])?.first)
        #expect(alt["interface_class_name"] as? String == "vendor_specific")
        let kinds = (alt["endpoints"] as? [[String: Any]] ?? []).map {
            "\($0["transfer_type"] as? String ?? "") \($0["direction"] as? String ?? "")"
        }
        #expect(kinds == ["interrupt in", "bulk in", "bulk out"])
    }

    @Test func filtersSelectDevices() async throws {
        let lab = try await Lab.shared.session()
        let lab1209 = try await devices(lab, query: "?vendor_id=0x1209")
        #expect(Set(lab1209.compactMap { $0["serial"] as? String }) == ["lab-sourcesink", "lab-loopback", "lab-ffs", "lab-dfu"])
        #expect(try await devices(lab, query: "?vendor_id=4617&product_id=2").map { $0["serial"] as? String }
            == ["lab-loopback"])
        #expect(try await devices(lab, query: "?serial=lab-ffs").count == 1)
        #expect(try await devices(lab, query: "?serial=nope").isEmpty)
        // The keyboard's class is given per interface: HID (3).
        let hid = try await devices(lab, query: "?class=hid")
        #expect(hid.map { $0["product"] as? String } == ["QEMU USB Keyboard"])
        #expect(try await devices(lab, query: "?class=3").count == 1)
        let hubs = try await devices(lab, query: "?class=0x09")
        #expect(hubs.count == 8, "7 root hubs and QEMU's hub")
    }

    @Test(arguments: [
        ("/v1/devices/not!an-id", 400, "invalid-device-id"),
        ("/v1/devices/9-9", 404, "device-not-found"),
        ("/v1/devices/usb9", 404, "device-not-found"),
        ("/v1/devices/9-9/descriptors/raw", 404, "device-not-found"),
        ("/v1/devices?vendor_id=0x10000", 400, "invalid-parameter"),
        ("/v1/devices?class=nonsense", 400, "invalid-parameter"),
        ("/v1/devices?colour=blue", 400, "unknown-parameter"),
        ("/v1/devices?serial=a&serial=b", 400, "repeated-parameter"),
        ("/v1/devices/usb1?x=1", 400, "unknown-parameter"),
        ("/v2/devices", 404, "not-found"),
    ])
    func badRequestsGetProblems(path: String, status: Int, code: String) async throws {
        let lab = try await Lab.shared.session()
        let result = try await lab.daemon.get(path)
        #expect(problemMismatch(result, status: status, code: code) == nil, "\(path)")
    }

    @Test func wrongMethodsGet405WithAllow() async throws {
        let lab = try await Lab.shared.session()
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let result = try await lab.daemon.request(method, "/v1/devices/usb1")
            #expect(problemMismatch(result, status: 405, code: "method-not-allowed") == nil, "\(method)")
            #expect(result.header("Allow") == "GET, HEAD")
        }
    }

    @Test func requestIDsComeBackAndReachTheLog() async throws {
        let lab = try await Lab.shared.session()
        let result = try await lab.daemon.request("GET", "/v1/devices", headers: ["X-Request-Id": "lab-test-4711"])
        #expect(result.header("X-Request-Id") == "lab-test-4711")
        let fresh = try await lab.daemon.get("/v1/devices")
        #expect(fresh.header("X-Request-Id")?.count == 16)
        #expect(try await lab.logLine(containing: ["request.id=lab-test-4711"]) != nil)
    }
}
}
