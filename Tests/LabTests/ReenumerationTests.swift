import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Issue 24, class 3: a board a client drove that comes back as a keyboard (a flash, a
    /// vendor request, a reset that re-enumerates) gets no host driver for it; the same
    /// keyboard plugged by a person, with no client driving the port, is the host's as always.
    @Suite struct ReenumerationTests {
        static let gadgets = "/sys/kernel/config/usb_gadget"
        /// The lab's own daemon shows risky devices (--expose-risky-devices): these tests run a
        /// daemon with the default policy beside it, on this port, logging to guard.log.
        static let port = 8093

        /// Starts the default-policy daemon (again) and waits until it answers.
        func startDaemon(_ lab: LabSession) async throws {
            try await stopDaemon(lab)
            try await lab.run(
                """
                setsid \(LabSession.daemonBinary) --port \(Self.port) --log-level debug > "$TMPDIR/guard.log" 2>&1 &
                echo $! > "$TMPDIR/guard.pid"
                for i in $(seq 300); do curl -sf http://127.0.0.1:\(Self.port)/readyz > /dev/null && exit 0; sleep 0.1; done
                cat "$TMPDIR/guard.log"; exit 1
                """)
        }

        /// Stops it (a pid file: a pattern would match the shell running the command too).
        func stopDaemon(_ lab: LabSession) async throws {
            try await lab.run(
                """
                [ -f "$TMPDIR/guard.pid" ] || exit 0
                kill "$(cat "$TMPDIR/guard.pid")" 2>/dev/null || true
                while kill -0 "$(cat "$TMPDIR/guard.pid")" 2>/dev/null; do sleep 0.05; done
                rm -f "$TMPDIR/guard.pid"
                """)
        }

        /// `curl` against that daemon: "<status> <body>" as (status, body).
        func curl(_ lab: LabSession, _ arguments: String) async throws -> (status: Int, body: String) {
            let output = try await lab.exec("curl -s -w '\\n%{http_code}' \(arguments)")
            let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        /// Waits (10 s at most) for a line of that daemon's log with every one of `parts`.
        func logLine(_ lab: LabSession, _ parts: [String]) async throws -> Bool {
            let pattern = parts.map { "grep -F -- '\($0)'" }.joined(separator: " | ")
            let result = try await lab.exec(
                "for i in $(seq 100); do [ -n \"$(cat \"$TMPDIR/guard.log\" | \(pattern))\" ] && exit 0; sleep 0.1; done; exit 1")
            return result.rc == 0
        }
        /// A boot keyboard's report descriptor (HID 1.11, appendix B.1), in octal for printf.
        static let keyboardReport =
            "\\005\\001\\011\\006\\241\\001\\005\\007\\031\\340\\051\\347\\025\\000\\045\\001\\165\\001\\225\\010\\201\\002"
            + "\\225\\001\\165\\010\\201\\003\\225\\005\\165\\001\\005\\010\\031\\001\\051\\005\\221\\002\\225\\001\\165\\003"
            + "\\221\\003\\225\\006\\165\\010\\025\\000\\045\\145\\005\\007\\031\\000\\051\\145\\201\\000\\300"

        /// A CTAPHID report descriptor (FIDO Alliance page 0xF1D0), in octal for printf.
        static let fidoReport = "\\006\\320\\361\\011\\001\\241\\001\\011\\040\\025\\000\\046\\377\\000\\165\\010\\225\\100\\201\\002\\011\\041\\025\\000\\046\\377\\000\\165\\010\\225\\100\\221\\002\\300"

        /// Makes (once per boot) three gadgets for the free UDC: "board", a SourceSink board
        /// (1209:0020, serial lab-board), "kbd", a HID boot keyboard, and "fido", a security key.
        func makeGadgets(_ lab: LabSession) async throws {
            let g = Self.gadgets
            try await lab.run(
                """
                set -e
                "$LAB_RUN/modprobe" usb_f_hid
                # The HID driver udev would load for a HID device (the guest has no udev): the
                # HID core fills a device's report_descriptor in sysfs only once a HID driver binds.
                "$LAB_RUN/modprobe" hid-generic
                if [ ! -d \(g)/board ]; then
                  mkdir -p \(g)/board/strings/0x409 \(g)/board/configs/c.1/strings/0x409
                  echo 0x1209 > \(g)/board/idVendor; echo 0x0020 > \(g)/board/idProduct
                  echo lab-board > \(g)/board/strings/0x409/serialnumber
                  echo "usbhttpd lab" > \(g)/board/strings/0x409/manufacturer
                  echo "Board" > \(g)/board/strings/0x409/product
                  mkdir \(g)/board/functions/SourceSink.board
                  ln -s \(g)/board/functions/SourceSink.board \(g)/board/configs/c.1/
                fi
                \(Self.hidGadget("kbd", product: 0x0021, name: "Not a board", subclass: 1, protocol: 1, length: 8, report: Self.keyboardReport))
                \(Self.hidGadget("fido", product: 0x0022, name: "Security key", subclass: 0, protocol: 0, length: 64, report: Self.fidoReport))
                """)
        }

        /// The shell that makes (once) configfs gadget `gadget`: one HID function with these
        /// codes, report length and report descriptor (octal, for printf), serial lab-board.
        static func hidGadget(
            _ gadget: String, product: Int, name: String, subclass: Int, protocol: Int, length: Int, report: String
        ) -> String {
            let d = "\(gadgets)/\(gadget)", f = "\(gadgets)/\(gadget)/functions/hid.\(gadget)"
            return """
                if [ ! -d \(d) ]; then
                  mkdir -p \(d)/strings/0x409 \(d)/configs/c.1/strings/0x409
                  echo 0x1209 > \(d)/idVendor; echo \(String(format: "0x%04x", product)) > \(d)/idProduct
                  echo lab-board > \(d)/strings/0x409/serialnumber
                  echo "\(name)" > \(d)/strings/0x409/product
                  mkdir \(f)
                  echo \(`protocol`) > \(f)/protocol
                  echo \(subclass) > \(f)/subclass
                  echo \(length) > \(f)/report_length
                  printf '\(report)' > \(f)/report_desc
                  ln -s \(f) \(d)/configs/c.1/
                fi
                """
        }

        /// Binds gadget `name` to the free UDC (after unbinding the other), and waits until the
        /// host has configured it; its sysfs name.
        func plug(_ lab: LabSession, _ name: String) async throws -> String {
            let g = Self.gadgets
            return try await lab.run(
                """
                set -e
                for other in board kbd fido; do [ "$(cat \(g)/$other/UDC)" = "" ] || echo "" > \(g)/$other/UDC; done
                echo dummy_udc.4 > \(g)/\(name)/UDC
                for i in $(seq 200); do
                  for d in /sys/bus/usb/devices/*; do
                    [ -e "$d/serial" ] && [ "$(cat "$d/serial")" = lab-board ] && [ -e "$d/driver" ] \
                      && [ -e "$d/$(basename "$d"):1.0" ] && { basename "$d"; exit 0; }
                  done
                  sleep 0.05
                done
                echo "the gadget $name did not come up" >&2; exit 1
                """
            ).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func unplug(_ lab: LabSession) async throws {
            let g = Self.gadgets
            try await lab.run("for name in board kbd fido; do [ \"$(cat \(g)/$name/UDC)\" = \"\" ] || echo \"\" > \(g)/$name/UDC; done")
        }

        @Test func aDrivenBoardThatComesBackAsAKeyboardGetsNoHostDriver() async throws {
            let lab = try await Lab.shared.session()
            try await makeGadgets(lab)
            try await startDaemon(lab)
            do {
                try await check(lab)
            } catch {
                try? await unplug(lab)
                try? await stopDaemon(lab)
                throw error
            }
            try await stopDaemon(lab)
        }

        func check(_ lab: LabSession) async throws {
            let port = try await plug(lab, "board")
            let bus = String(port.prefix { $0 != "-" })
            let daemon = "http://127.0.0.1:\(Self.port)"
            #expect(await eventually { (try? await curl(lab, "\(daemon)/v1/devices/\(port)"))?.status == 200 }, "the daemon lists the board")
            // A client drives it (a claim opens the daemon's session on it).
            let claim = try await curl(lab, "-X POST \(daemon)/v1/devices/\(port)/interfaces/0/claim")
            #expect(claim.status == 200, "\(claim)")
            // Its firmware changes: it leaves and comes back on the same port as a boot keyboard.
            try await lab.run("echo '' > \(Self.gadgets)/board/UDC")
            #expect(try await logLine(lab, ["a device a client drove left", port]), "the daemon watches the port")
            #expect(try await lab.run("cat /sys/bus/usb/devices/usb\(bus)/interface_authorized_default") == "0\n", "its bus is armed")
            #expect(try await plug(lab, "kbd") == port)
            #expect(try await logLine(lab, ["came back with interfaces the policy protects", port]), "the log says so")
            let state = try await lab.run(
                """
                i=\(port):1.0
                cat /sys/bus/usb/devices/$i/authorized
                readlink /sys/bus/usb/devices/$i/driver || echo no-driver
                cat /sys/bus/usb/devices/usb\(bus)/interface_authorized_default
                """)
            #expect(state == "0\nno-driver\n1\n", "the keyboard has no driver, and the bus is disarmed: \(state)")
            // Not listed either (the policy hides boot keyboards).
            // Hidden by the policy: for clients the board left and did not come back (410).
            let listed = try await curl(lab, "\(daemon)/v1/devices/\(port)")
            #expect(listed.status == 410 && listed.body.contains("device-gone"), "\(listed)")

            // The same keyboard plugged again with no client driving the port: usbhid, as always.
            try await unplug(lab)
            #expect(try await plug(lab, "kbd") == port)
            let driver = try await lab.run(
                "for i in $(seq 100); do l=$(readlink /sys/bus/usb/devices/\(port):1.0/driver) && { basename $l; exit 0; }; sleep 0.05; done; echo none")
            #expect(driver == "usbhid\n", "\(driver)")
            try await unplug(lab)
        }

        /// Issue 24, class 2: a security key (a HID device like any other by its class codes,
        /// a FIDO one by its report descriptor) is out of every client's reach by default.
        @Test func aSecurityKeyIsOutOfReach() async throws {
            let lab = try await Lab.shared.session()
            try await makeGadgets(lab)
            try await startDaemon(lab)
            let port = try await plug(lab, "fido")
            do {
                try await checkKey(lab, port: port)
            } catch {
                try? await unplug(lab)
                try? await stopDaemon(lab)
                throw error
            }
            try await unplug(lab)
            try await stopDaemon(lab)
        }

        func checkKey(_ lab: LabSession, port: String) async throws {
            let driver = try await lab.run(
                "for i in $(seq 100); do l=$(readlink /sys/bus/usb/devices/\(port):1.0/driver) && { basename $l; exit 0; }; sleep 0.05; done; echo none")
            #expect(driver == "usbhid\n", "the host's HID driver has it: \(driver)")
            // Hidden when the daemon read its report descriptor before listing it; else listed
            // with its interface protected (the HID driver binds after the device appears).
            let daemon = "http://127.0.0.1:\(Self.port)"
            let listed = try await curl(lab, "\(daemon)/v1/devices/\(port)")
            let claim = try await curl(lab, "-X POST \(daemon)/v1/devices/\(port)/interfaces/0/claim")
            if listed.status == 404 {
                #expect(claim.status == 404, "\(claim)")
            } else {
                #expect(claim.status == 403 && claim.body.contains("interface-protected") && claim.body.contains("security key"), "\(claim)")
            }
            // No class request reaches it either (a CTAPHID message is a SET_REPORT or an OUT report).
            let report = try await curl(
                lab, "-X POST --data-binary \(String(repeating: "0", count: 64)) '\(daemon)/v1/devices/\(port)/control?request_type=0x21&request=9&value=0x0200&index=0'")
            #expect(report.status == 403 || report.status == 404, "\(report)")
            // The lab's own daemon, which exposes risky devices, reaches it: the key is what the
            // default policy protects, not something broken.
            let exposed = try await lab.daemon.get("/v1/devices/\(port)")
            #expect(exposed.status == 200)
        }
    }
}
