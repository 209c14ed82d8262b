import Foundation
import Glibc
import Testing
import TestSupport

extension InTheLab {
    /// A console on the other chip family: QEMU's FTDI FT232 (`-device usb-serial`, ftdi_sio on
    /// the guest's side, a ttyUSB), whose other end is a socket on the host ($LAB_RUN/ftdi.sock)
    /// where lab/guest/board.py plays the board. QEMU's usb_serial_* trace events (in
    /// $LAB_RUN/qemu.log) say what the chip was told: the baud rate, the data format, DTR and RTS.
    @Suite struct FTDIConsoleLabTests {
        @Test func theFTDIChipsConsoleKeepsItsBootLogTalksAndTakesItsLine() async throws {
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: "lab-ftdi")
            let run = try await lab.run("echo \"$LAB_RUN\"").trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(await eventually {
                let console = (try? await lab.daemon.get("/v1/devices/\(id)/consoles").object()["consoles"] as? [[String: Any]])?.first
                return console?["state"] as? String == "open" && console?["driver"] as? String == "ftdi_sio"
            })
            // The daemon holds the tty: the board may print now, to nobody else.
            let before = await ConsoleLabTests.outputEnd(lab, id)
            #expect(before >= 0)
            let board = try ChildProcess(
                "/usr/bin/python3", [LabSession.root.appendingPathComponent("lab/guest/board.py").path, "unix:\(run)/ftdi.sock"],
                output: "\(run)/ftdi-board.log")
            defer { kill(board.pid, SIGKILL); _ = board.exitCode() }
            let boot = "U-Boot lab 2024.01 (usbhttpd)\r\nDRAM:  64 MiB\r\nLoading kernel from mmc 0:1 ...\r\nStarting kernel ...\r\nboard> "
            #expect(await eventually { await ConsoleLabTests.outputEnd(lab, id) == before + boot.utf8.count })
            let log = try await lab.daemon.get("/v1/devices/\(id)/consoles/0/output?from=\(before)")
            #expect(log.text == boot, "\(log.text)")
            // Talk to it over the WebSocket.
            let answer = try await ConsoleLabTests.talk(lab, id, command: "echo through the FTDI chip", answer: "through the FTDI chip")
            #expect(answer.contains("through the FTDI chip\r\nboard> "), "\(answer)")
            // The line and the modem lines, as the chip was told them.
            let line = try await lab.daemon.request("PUT", "/v1/devices/\(id)/consoles/0/line?baud=19200&data_bits=7&parity=odd&stop_bits=2")
            #expect(line.status == 200, "\(line.text)")
            let modem = try await lab.daemon.request("PUT", "/v1/devices/\(id)/consoles/0/modem?dtr=false&rts=true")
            #expect(modem.status == 200, "\(modem.text)")
            let brk = try await lab.post("/v1/devices/\(id)/consoles/0/break?duration_ms=20")
            #expect(brk.status == 200, "ftdi_sio sends breaks: \(brk.text)")
            var trace = ""
            #expect(await eventually {
                trace = ((try? String(contentsOfFile: "\(run)/qemu.log", encoding: .utf8)) ?? "").lowercased()
                return trace.contains("baud rate 19200") && trace.contains("parity o, data bits 7, stop bits 2")
                    && trace.contains(", value 0x202") && trace.contains(", value 0x100")
            }, "\(trace.suffix(2000))")
            // (SIO_SET_MODEM_CTRL: RTS raised is 0x0202, DTR lowered 0x0100, each its own request.)
        }
    }
}
