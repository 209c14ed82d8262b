import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Serial consoles on a real USB serial function: the lab's CDC-ACM gadget (configfs
    /// `acm`, bound to dummy_udc.4 for each test and unbound after), its host side a ttyACM of
    /// cdc_acm that the daemon holds, its board side /dev/ttyGS0 played by lab/guest/board.py.
    @Suite struct ConsoleLabTests {
        static let gadget = "/sys/kernel/config/usb_gadget/console"
        static let boot = "U-Boot lab 2024.01 (usbhttpd)\r\nDRAM:  64 MiB\r\nLoading kernel from mmc 0:1 ...\r\nStarting kernel ...\r\nboard> "

        /// Plugs the console board, waits until the daemon holds its tty, starts the board
        /// program (its boot log then goes to nobody but the daemon), runs `body`, and unplugs.
        func withBoard(_ body: (LabSession, String) async throws -> Void) async throws {
            let lab = try await Lab.shared.session()
            let g = Self.gadget
            let id = try await lab.run(
                """
                set -e
                "$LAB_RUN/modprobe" usb_f_acm; "$LAB_RUN/modprobe" cdc_acm
                if [ ! -d \(g) ]; then
                  mkdir -p \(g)/strings/0x409 \(g)/configs/c.1/strings/0x409
                  echo 0x1209 > \(g)/idVendor; echo 0x0020 > \(g)/idProduct
                  echo lab-console > \(g)/strings/0x409/serialnumber; echo "Console board" > \(g)/strings/0x409/product
                  mkdir \(g)/functions/acm.gs0; ln -s \(g)/functions/acm.gs0 \(g)/configs/c.1/
                fi
                for other in /sys/kernel/config/usb_gadget/*; do
                  [ "$(cat $other/UDC)" = dummy_udc.4 ] && echo "" > $other/UDC
                done
                echo dummy_udc.4 > \(g)/UDC
                for i in $(seq 200); do
                  for d in /sys/bus/usb/devices/*; do
                    [ "$(cat $d/serial 2>/dev/null)" = lab-console ] && [ -e "$d/$(basename $d):1.0/tty" ] && { basename $d; exit 0; }
                  done
                  sleep 0.05
                done
                echo "the console board did not come up" >&2; exit 1
                """
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            var failure: (any Error)?
            do {
                #expect(await eventually { (try? await Self.console(lab, id))?["state"] as? String == "open" })
                try await lab.run(
                    "setsid python3 \(LabSession.root.path)/lab/guest/board.py /dev/ttyGS0 > \"$TMPDIR/board.log\" 2>&1 < /dev/null & echo $! > \"$TMPDIR/board.pid\"")
                try await body(lab, id)
            } catch {
                failure = error
            }
            try await lab.run("kill $(cat \"$TMPDIR/board.pid\") 2>/dev/null || true; echo '' > \(g)/UDC || true")
            if let failure { throw failure }
        }

        /// The console as GET …/consoles lists it.
        static func console(_ lab: LabSession, _ id: String) async throws -> [String: Any]? {
            (try await lab.daemon.get("/v1/devices/\(id)/consoles").object()["consoles"] as? [[String: Any]])?.first
        }

        static func outputEnd(_ lab: LabSession, _ id: String) async -> Int {
            ((try? await console(lab, id))?["output"] as? [String: Any])?["end"] as? Int ?? -1
        }

        /// Reads a WebSocket's messages until `text` has come; all that came.
        static func read(_ socket: TestWebSocket, until text: String, within seconds: Double = 20) async throws -> String {
            var got = ""
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            while !got.contains(text), ContinuousClock.now < deadline {
                guard let message = try await socket.message(within: 2) else { continue }
                got += String(decoding: message, as: UTF8.self)
            }
            return got
        }

        /// One command typed over the console's WebSocket and the board's answer: all that came
        /// until the answer and the next prompt.
        static func talk(_ lab: LabSession, _ id: String, command: String, answer: String) async throws -> String {
            let socket = try await TestWebSocket(
                port: lab.daemonPort, path: "/v1/devices/\(id)/consoles/0/ws?from=end", protocols: "usbhttpd.console.1")
            defer { socket.close() }
            #expect(socket.status == 101)
            try socket.send(Array((command + "\r").utf8))
            return try await read(socket, until: answer + "\r\nboard> ")
        }

        @Test func aLateClientReadsTheBootLogAndTalksToTheBoard() async throws {
            try await withBoard { lab, id in
                #expect(await eventually { await Self.outputEnd(lab, id) == Self.boot.utf8.count })
                let device = try await lab.daemon.get("/v1/devices/\(id)/consoles").object()
                let console = try #require((device["consoles"] as? [[String: Any]])?.first)
                #expect(console["driver"] as? String == "cdc_acm" && (console["tty"] as? String)?.hasPrefix("ttyACM") == true)
                // Connected after the board printed: the daemon kept it.
                let log = try await lab.daemon.get("/v1/devices/\(id)/consoles/0/output")
                #expect(log.status == 200 && log.text == Self.boot, "\(log.text)")
                // An interactive session over the WebSocket: prompt, command, answer.
                let answer = try await Self.talk(lab, id, command: "echo hello from the lab", answer: "hello from the lab")
                #expect(answer.contains("echo hello from the lab\r\nhello from the lab\r\nboard> "), "\(answer)")
                // While a WebSocket types, a POST is refused; once it left, a POST is typed and its
                // answer is in the output after it.
                var holder: TestWebSocket?
                #expect(await eventually {  // once the daemon saw the first socket go
                    holder = try? await TestWebSocket(
                        port: lab.daemonPort, path: "/v1/devices/\(id)/consoles/0/ws?from=end", protocols: "usbhttpd.console.1")
                    return holder?.status == 101
                })
                let before = await Self.outputEnd(lab, id)
                let typed = try await lab.post("/v1/devices/\(id)/consoles/0/input", body: Array("help\r".utf8))
                #expect(typed.status == 409, "the WebSocket holds the writer: \(typed.text)")
                holder?.close()
                #expect(await eventually {
                    (try? await lab.post("/v1/devices/\(id)/consoles/0/input", body: Array("help\r".utf8)))?.status == 200
                })
                #expect(await eventually {
                    (try? await lab.daemon.get("/v1/devices/\(id)/consoles/0/output?from=\(before)"))?.text
                        .contains("commands: help, echo, flood, exit") == true
                })
            }
        }

        /// A script written for pyserial, with usbhttpd's URL: the boot log, a command and its
        /// answer, a baud rate (the pyclient venv: script/python-client installs it).
        @Test func aPyserialScriptTalksToTheBoardUnchanged() async throws {
            try await withBoard { lab, id in
                #expect(await eventually { await Self.outputEnd(lab, id) == Self.boot.utf8.count })
                let python = LabSession.root.appendingPathComponent(".build-tools/pyclient/bin/python").path
                try #require(FileManager.default.isExecutableFile(atPath: python), "no \(python): run script/python-client")
                let output = try await lab.run(
                    """
                    cd "$TMPDIR" && \(python) - <<'EOF'
                    import serial, usbhttpd
                    port = serial.serial_for_url("usbhttpd://127.0.0.1:8080/\(id)/0?start=start", baudrate=115200, timeout=10)
                    boot = port.read_until(b"board> ")
                    assert b"U-Boot lab 2024.01" in boot and boot.endswith(b"board> "), boot
                    port.write(b"echo from pyserial\\r")
                    answer = port.read_until(b"board> ")
                    assert b"from pyserial\\r\\nboard> " in answer, answer
                    port.baudrate = 57600
                    print("pyserial ok", port.cts)
                    port.close()
                    EOF
                    """)
                #expect(output.contains("pyserial ok"), "\(output)")
                let console = try await Self.console(lab, id)
                #expect((console?["line"] as? [String: Any])?["baud"] as? Int == 57600, "the baud rate reached the tty")
            }
        }

        /// pexpect on the console (usbhttpd.expect): the boot log's prompt, a command typed with
        /// sendline and its answer expected, as a test script drives a board.
        @Test func pexpectDrivesTheBoardThroughItsConsole() async throws {
            try await withBoard { lab, id in
                #expect(await eventually { await Self.outputEnd(lab, id) == Self.boot.utf8.count })
                let python = LabSession.root.appendingPathComponent(".build-tools/pyclient/bin/python").path
                let output = try await lab.run(
                    """
                    cd "$TMPDIR" && \(python) - <<'EOF'
                    import usbhttpd, usbhttpd.expect
                    with usbhttpd.Client("http://127.0.0.1:8080") as usb, usb.device("\(id)").console(0, start="start") as console:
                        board = usbhttpd.expect.spawn(console, timeout=10, encoding="utf-8")
                        board.expect("Starting kernel ...\\r\\nboard> ")
                        assert "U-Boot lab 2024.01" in board.before, board.before
                        board.sendline("echo from pexpect")
                        board.expect("from pexpect\\r\\nboard> ")
                        print("pexpect ok", repr(board.before))
                    EOF
                    """)
                #expect(output.contains("pexpect ok"), "\(output)")
            }
        }

        @Test func lineSettingsAndModemLinesReachTheWire() async throws {
            try await withBoard { lab, id in
                let bus = id.split(separator: "-").first.map(String.init) ?? "0"
                try await lab.run(
                    """
                    "$LAB_RUN/modprobe" usbmon
                    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
                    setsid cat /sys/kernel/debug/usb/usbmon/\(bus)u > "$TMPDIR/usbmon.txt" 2>&1 < /dev/null & echo $! > "$TMPDIR/usbmon.pid"
                    # Capturing once the board's own descriptor requests show (a loaded guest starts cat late).
                    for i in $(seq 100); do
                      lsusb -v -d 1209:0020 > /dev/null 2>&1 || true
                      [ -s "$TMPDIR/usbmon.txt" ] && exit 0
                      sleep 0.1
                    done
                    echo "usbmon captured nothing" >&2; exit 1
                    """)
                let line = try await lab.daemon.request("PUT", "/v1/devices/\(id)/consoles/0/line?baud=74880&data_bits=7&parity=even&stop_bits=2")
                #expect(line.status == 200, "\(line.text)")
                let settings = try #require(try line.object()["line"] as? [String: Any])
                #expect(settings["baud"] as? Int == 74880 && settings["data_bits"] as? Int == 7 && settings["parity"] as? String == "even")
                let modem = try await lab.daemon.request("PUT", "/v1/devices/\(id)/consoles/0/modem?dtr=false&rts=true")
                #expect(modem.status == 200, "\(modem.text)")
                let lines = try #require(try modem.object()["modem"] as? [String: Any])
                #expect(lines["dtr"] as? Bool == false && lines["rts"] as? Bool == true)
                // f_acm does not declare breaks (bmCapabilities has no SEND_BREAK): cdc_acm refuses
                // them, and the daemon says so.
                let brk = try await lab.post("/v1/devices/\(id)/consoles/0/break?duration_ms=50")
                #expect(problemMismatch(brk, status: 400, code: "console-line-refused") == nil)
                #expect(brk.text.contains("a break"), "\(brk.text)")
                // The host's requests on the bus, as the board's side receives them: SET_LINE_CODING
                // with 74880 (0x00012480, little-endian), 2 stop bits (2), even parity (2), 7 bits;
                // SET_CONTROL_LINE_STATE with RTS (2) and not DTR (1).
                var wire = ""
                #expect(await eventually {
                    wire = (try? await lab.run("cat \"$TMPDIR/usbmon.txt\"")) ?? ""
                    return wire.contains("s 21 20 0000 0000 0007 7 = 80240100 020207") && wire.contains("s 21 22 0002 0000 0000 0")
                }, "\(wire)")
                try await lab.run("kill $(cat \"$TMPDIR/usbmon.pid\") 2>/dev/null || true")
                let refused = try await lab.daemon.request("PUT", "/v1/devices/\(id)/consoles/0/line?parity=often")
                #expect(problemMismatch(refused, status: 400, code: "invalid-parameter") == nil)
            }
        }

        @Test func manyReadItOneWritesAndTheUnplugIsTold() async throws {
            try await withBoard { lab, id in
                #expect(await eventually { await Self.outputEnd(lab, id) == Self.boot.utf8.count })
                let follower = try RawConnection(port: lab.daemonPort)
                try follower.send("GET /v1/devices/\(id)/consoles/0/output?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                let writer = try await TestWebSocket(port: lab.daemonPort, path: "/v1/devices/\(id)/consoles/0/ws?from=end", protocols: "usbhttpd.console.1")
                let reader = try await TestWebSocket(
                    port: lab.daemonPort, path: "/v1/devices/\(id)/consoles/0/ws?from=end&write=false", protocols: "usbhttpd.console.1")
                let second = try await TestWebSocket(port: lab.daemonPort, path: "/v1/devices/\(id)/consoles/0/ws", protocols: "usbhttpd.console.1")
                #expect(writer.status == 101 && reader.status == 101)
                #expect(second.status == 409, "one writer at a time")
                try writer.send(Array("echo both see this\r".utf8))
                #expect(try await Self.read(reader, until: "both see this\r\nboard> ").contains("both see this\r\n"))
                #expect(try await Self.read(writer, until: "both see this\r\nboard> ").contains("both see this\r\n"))
                // The adapter is unplugged while all three are open: each is told, the daemon goes on.
                try await lab.run("echo '' > \(Self.gadget)/UDC")
                let writerClosed = await writer.closedByServer(within: 10)
                let readerClosed = await reader.closedByServer(within: 10)
                #expect(writerClosed && readerClosed)
                let followed = try #require(try await follower.chunkedResponse(within: 10))
                #expect(followed.status == 200 && !followed.complete, "the followed output is cut")
                #expect(String(decoding: followed.body, as: UTF8.self).hasPrefix(Self.boot))
                #expect(try await lab.daemon.get("/healthz").status == 200)
                let gone = try await lab.daemon.get("/v1/devices/\(id)/consoles")
                #expect(gone.status == 410 || gone.status == 404, "\(gone.status)")
            }
        }

        @Test func aMegabyteASecondOfOutputArrivesWithNoByteLost() async throws {
            try await withBoard { lab, id in
                #expect(await eventually { await Self.outputEnd(lab, id) == Self.boot.utf8.count })
                let total = 1 << 20
                let follower = try RawConnection(port: lab.daemonPort)
                try follower.send("GET /v1/devices/\(id)/consoles/0/output?follow=true&from=end HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\n\r\n")
                #expect(await eventually { ((try? await Self.console(lab, id))?["readers"] as? Int) == 1 })
                let typed = try await lab.post("/v1/devices/\(id)/consoles/0/input", body: Array("flood \(total) \(total)\r".utf8))
                #expect(typed.status == 200)
                let started = ContinuousClock.now
                var received: [UInt8] = []
                let done = Array("flood done\r\n".utf8)
                while ContinuousClock.now - started < .seconds(60) {
                    guard let more = try await follower.receive(within: 1) else { break }
                    received += more
                    if received.count > total, received.suffix(400).firstRange(of: done) != nil { break }
                }
                let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
                    + Double((ContinuousClock.now - started).components.seconds)
                // The body de-chunked, as far as it came.
                let body = ChunkedResponse(received)?.body ?? []
                // Echo of the command, then the flood, then "flood done".
                guard let start = body.firstRange(of: Array("\(total) \(total)\r\n".utf8))?.upperBound else {
                    Issue.record("no flood began: \(String(decoding: body.prefix(200), as: UTF8.self))")
                    return
                }
                let flood = Array(body[start...].prefix(total))
                #expect(flood.count == total, "\(flood.count) of \(total) bytes in \(seconds) s")
                let lost = flood.enumerated().first { $0.element != UInt8($0.offset % 251) }
                #expect(lost == nil, "the first wrong byte: \(String(describing: lost))")
                print("console flood: \(total) bytes at 1 MB/s asked, received in \(seconds) s")
            }
        }
    }
}
