import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Firmware updates of the lab's DFU gadget (lab/gadget/dfu-gadget.c: 1209:0010 in its
    /// firmware, 1209:0011 in its bootloader), which re-enumerates as a board being flashed
    /// does: a real DFU tool takes it, the README's curl recipe (examples/dfu-flash.sh) flashes
    /// it through the daemon under a lease that holds through the re-enumerations, the event
    /// feed shows what it left and came back as, a board that does not come back in time ends
    /// its lease after the grace, and a client that goes away mid-flash leaves a board the next
    /// client can take and recover.
    @Suite struct DFUTests {
        static let serial = "lab-dfu"
        static let recipe = LabSession.root.appendingPathComponent("examples/dfu-flash.sh").path

        /// The board's port id and its summary, once it is in its firmware (1209:0010) and
        /// nothing holds it.
        func board(_ lab: LabSession) async throws -> (id: String, summary: [String: Any]) {
            // Left in its bootloader by a test that failed halfway: back to its firmware.
            let stranded = try await lab.daemon.get("/v1/devices?serial=\(Self.serial)&product_id=0x0011")
            if let device = (try stranded.object()["devices"] as? [[String: Any]])?.first, let id = device["id"] as? String {
                _ = try await lab.post("/v1/devices/\(id)/control?request_type=0x40&request=0x40")
            }
            var result = try await lab.daemon.get("/v1/wait?serial=\(Self.serial)&product_id=0x0010&timeout_ms=20000")
            if result.status == 404 {
                // Stuck (a test before lost a block to gadgetfs' race and failed): started again.
                try await lab.run(Self.restartBoard)
                result = try await lab.daemon.get("/v1/wait?serial=\(Self.serial)&product_id=0x0010&timeout_ms=20000")
            }
            let devices = try #require(try result.object()["devices"] as? [[String: Any]], "\(result.text)")
            let summary = try #require(devices.first)
            let id = try #require(summary["id"] as? String)
            try await lab.released(id)
            return (id, summary)
        }

        /// Ends the lab's DFU gadget and starts it again (its firmware as at boot: 1209:0010), for
        /// a board gadgetfs left stuck; waits until it is back.
        static let restartBoard = """
            exe=$(readlink /proc/$(pgrep -o -x dfu-gadget)/exe); kill $(pgrep -x dfu-gadget)
            for i in $(seq 100); do pgrep -x dfu-gadget > /dev/null || break; sleep 0.05; done
            setsid "$exe" /dev/gadget/dummy_udc >> "$LAB_RUN/dfu-gadget.log" 2>&1 < /dev/null &
            for i in $(seq 200); do lsusb -d 1209:0010 > /dev/null && break; sleep 0.05; done
            """

        /// Shell: runs `command` (a download to the board that succeeds or fails) again while it
        /// fails and the board's log says it lost a block to gadgetfs' race, up to ten runs;
        /// says "retried" each time. Any other failure stops it.
        static func whileBlocksAreLost(_ command: String) -> String {
            """
            for try in $(seq 10); do
              lost=$(grep -c 'block lost' "$LAB_RUN/dfu-gadget.log")
              if \(command); then break; fi
              [ "$(grep -c 'block lost' "$LAB_RUN/dfu-gadget.log")" -gt "$lost" ] || break
              echo "retried: the board lost a block"
            done
            """
        }

        /// A firmware image for the gadget: "LABFW", the version, then `size` bytes in all.
        func writeImage(_ lab: LabSession, major: Int, minor: Int, name: String, size: Int = 65536) async throws {
            let octal = { (value: Int) in String(("00" + String(value, radix: 8)).suffix(3)) }
            try await lab.run(
                "printf 'LABFW\\\(octal(major))\\\(octal(minor))' > \"$TMPDIR/\(name)\";"
                    + " head -c \(size - 7) /dev/urandom >> \"$TMPDIR/\(name)\"")
        }

        /// Expects the board's firmware to be the image `name` written by writeImage: its version
        /// in bcdDevice, and the image's CRC-32 in its configuration string (a block the board
        /// lost without knowing would keep the version and change the CRC).
        func expectFirmware(_ lab: LabSession, _ id: String, _ name: String, bcd: Int) async throws {
            let crc = try await lab.run(
                "python3 -c 'import sys, zlib; print(\"%08x\" % zlib.crc32(open(sys.argv[1], \"rb\").read()))' \"$TMPDIR/\(name)\"")
            let details = try await lab.daemon.get("/v1/devices/\(id)").object()
            let version = (details["device_descriptor"] as? [String: Any])?["bcd_device"] as? Int
            let string = ((details["configurations"] as? [[String: Any]])?.first?["string"] as? String) ?? ""
            #expect(version == bcd, "bcdDevice \(version.map { String($0, radix: 16) } ?? "none")")
            #expect(string == "firmware \(String(bcd >> 8, radix: 16)).\(String(format: "%02x", bcd & 0xff)) crc32 \(crc.trimmingCharacters(in: .whitespacesAndNewlines))")
        }

        @Test func dfuUtilTakesTheGadgetAndFlashesItDirectly() async throws {
            let lab = try await Lab.shared.session()
            let (id, _) = try await board(lab)
            let listing = try await lab.run("timeout 30 dfu-util -l 2>&1 || true")
            #expect(listing.contains("Found Runtime: [1209:0010]") && listing.contains("serial=\"lab-dfu\""), "\(listing)")
            try await writeImage(lab, major: 3, minor: 0x21, name: "direct.bin")
            // dfu-util keeps one libusb context, which sees no device arrive in this guest (no
            // udevd): detach and download are two runs, as with a board that needs a button.
            // gadgetfs lets the host send its next control request before the board has read a
            // block, which is then lost (lab/gadget/dfu-gadget.c, lose_block; a third of
            // dfu-util's 64 KiB downloads under TCG): the board says so in its log and answers
            // errUNKNOWN (or an empty GETSTATUS), and only then the download is made again.
            let (status, output) = try await lab.runDetached(
                """
                start=$(date +%s%N)
                timeout 60 dfu-util -d 1209:0010 -e > "$TMPDIR/dfu-util.log" 2>&1
                for i in $(seq 200); do lsusb -d 1209:0011 > /dev/null && break; sleep 0.05; done
                \(Self.whileBlocksAreLost("{ timeout 120 dfu-util -d 1209:0011 -D \"$TMPDIR/direct.bin\" >> \"$TMPDIR/dfu-util.log\" 2>&1; grep -q 'Done!' \"$TMPDIR/dfu-util.log\"; }"))
                for i in $(seq 200); do lsusb -v -d 1209:0010 2>/dev/null | grep -q 'bcdDevice *3.21' && break; sleep 0.05; done
                echo "ms=$(( ($(date +%s%N) - start) / 1000000 ))"
                grep -v 'Download\\s*\\[' "$TMPDIR/dfu-util.log" | tail -6
                """, name: "dfu-util", within: 300)
            // dfu-util 0.11 ends with 74 after "Done!" when the device it reset came back as
            // another one (it cannot release the interface of the old): the device counts.
            #expect(status == "0" && output.contains("Done!"), "\(output)")
            FileHandle.standardError.write(Data("dfu-util, detach to firmware back: \(output.split(separator: "\n").filter { $0.hasPrefix("ms=") || $0.hasPrefix("retried") })\n".utf8))
            try await lab.daemon.get("/v1/wait?id=\(id)&product_id=0x0010&timeout_ms=20000").expectStatus(200)
            try await expectFirmware(lab, id, "direct.bin", bcd: 0x0321)
        }

        @Test func theCurlRecipeFlashesUnderALeaseAndTheEventsShowTheCycle() async throws {
            let lab = try await Lab.shared.session()
            let (id, _) = try await board(lab)
            // 8 KiB: 32 blocks, each two curl runs (the timing of 64 KiB is the benchmark's).
            try await writeImage(lab, major: 4, minor: 0x05, name: "recipe.bin", size: 8192)
            let (leaseID, token, _) = try await lab.takeLease(id, "ttl_ms=300000&grace_ms=20000")
            let (_, output) = try await lab.runDetached(
                """
                curl -sN 'http://127.0.0.1:8080/v1/events?serial=\(Self.serial)' > "$TMPDIR/dfu-events.txt" &
                follower=$!
                for i in $(seq 200); do grep -q retry: "$TMPDIR/dfu-events.txt" && break; sleep 0.1; done
                start=$(date +%s%N)
                LEASE=\(token) sh \(Self.recipe) http://127.0.0.1:8080 \(id) "$TMPDIR/recipe.bin" > "$TMPDIR/recipe.out" 2>&1; echo "rc=$?"
                echo "ms=$(( ($(date +%s%N) - start) / 1000000 ))"
                # Someone else, meanwhile: the board is the lease holder's.
                curl -s -o /dev/null -w 'other=%{http_code}\\n' -X POST http://127.0.0.1:8080/v1/devices/\(id)/interfaces/0/claim
                for i in $(seq 100); do [ $(grep -c '^event: added' "$TMPDIR/dfu-events.txt") -ge 2 ] && break; sleep 0.1; done
                kill $follower
                cat "$TMPDIR/recipe.out"
                """, name: "dfu-recipe", within: 300)
            #expect(output.contains("rc=0") && output.contains("other=423"), "\(output)")
            FileHandle.standardError.write(Data("curl recipe, 8 KiB: \(output.split(separator: "\n").dropFirst().first ?? "")\n".utf8))
            try await expectFirmware(lab, id, "recipe.bin", bcd: 0x0405)
            // The follower saw it leave as the firmware, come as the bootloader, leave, come back.
            let events = try await lab.run("cat \"$TMPDIR/dfu-events.txt\"")
            let cycle = HotplugTests.events(events).map { "\($0.name) \($0.device)" }
            #expect(cycle == ["removed \(id)", "added \(id)", "removed \(id)", "added \(id)"], "\(events)")
            let products = events.split(separator: "\n").filter { $0.hasPrefix("data: ") }.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])
                    .flatMap { ($0["device"] as? [String: Any])?["product_id"] as? Int }
            }
            #expect(products == [0x0010, 0x0011, 0x0011, 0x0010], "\(events)")
            // The lease held throughout, and is still the holder's.
            let leases = try await lab.daemon.get("/v1/leases").object()["leases"] as? [[String: Any]] ?? []
            #expect(leases.contains { $0["id"] as? String == leaseID && $0["device_gone_at"] is NSNull }, "\(leases)")
            try await lab.daemon.request("DELETE", "/v1/leases/\(leaseID)", headers: ["X-USB-Lease": token]).expectStatus(200)
        }

        @Test func aBoardThatDoesNotComeBackInTimeEndsItsLease() async throws {
            let lab = try await Lab.shared.session()
            let (id, summary) = try await board(lab)
            let address = try #require(summary["address"] as? Int)
            let (_, token, _) = try await lab.takeLease(id, "ttl_ms=60000&grace_ms=1000")
            // VANISH: off the bus for 6 s.
            let vanish = try await lab.post(
                "/v1/devices/\(id)/control?request_type=0x40&request=0x41&value=6000", headers: ["X-USB-Lease": token])
            #expect(vanish.status == 200, "\(vanish.text)")
            let wait = try await lab.daemon.get("/v1/wait?id=\(id)&not_address=\(address)&timeout_ms=2500")
            #expect(wait.status == 404 && wait.text.contains("device-not-present"), "\(wait.text)")
            let ended = try await lab.logLine(containing: ["its device did not come back", "usb.device=\(id)"])
            #expect(ended != nil, "the lease ended after its grace")
            let leases = try await lab.daemon.get("/v1/leases").object()["leases"] as? [[String: Any]] ?? []
            #expect(leases.isEmpty, "\(leases)")
            // Back later, it is anyone's. A class request to its interface claims it, as usbfs
            // does in the kernel, and the daemon's claims say so.
            try await lab.daemon.get("/v1/wait?id=\(id)&not_address=\(address)&timeout_ms=20000").expectStatus(200)
            let state = try await lab.post("/v1/devices/\(id)/control?request_type=0xa1&request=5&length=1")
            #expect(state.status == 200 && state.body == [0], "appIDLE: \(state.text)")
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]] ?? []
            #expect(claims.map { $0["interface"] as? Int } == [0], "\(claims)")
            try await lab.released(id)
        }

        @Test func aClientGoneMidFlashLeavesABoardTheNextOneRecovers() async throws {
            let lab = try await Lab.shared.session()
            let (id, summary) = try await board(lab)
            let address = try #require(summary["address"] as? Int)
            let (_, token, _) = try await lab.takeLease(id, "ttl_ms=12000")
            // The first client: into the bootloader, 5 blocks, then it is gone (no renewal,
            // no release): its lease runs out and takes its claim with it.
            let (_, first) = try await lab.runDetached(
                """
                D=http://127.0.0.1:8080/v1/devices/\(id); L='X-USB-Lease: \(token)'
                curl -sf -H "$L" -X POST $D/interfaces/0/claim > /dev/null
                curl -sf -H "$L" -X POST "$D/control?request_type=0x21&request=0&value=1000" > /dev/null
                curl -sf -H "$L" -X POST "http://127.0.0.1:8080/v1/wait?id=\(id)&not_address=\(address)&class=0xfe&claim=0" > /dev/null
                for n in $(seq 0 4); do
                  head -c 256 /dev/zero | curl -sf -H "$L" --data-binary @- "$D/control?request_type=0x21&request=1&value=$n" > /dev/null
                  curl -sf -H "$L" -X POST "$D/control?request_type=0xa1&request=3&length=6" > /dev/null
                done
                echo sent
                """, name: "dfu-gone", within: 120)
            #expect(first.contains("sent"), "\(first)")
            #expect(try await lab.logLine(containing: ["lease expired", "usb.device=\(id)"], within: 40) != nil)
            let claims = try await lab.daemon.get("/v1/devices/\(id)/claims").object()["claims"] as? [[String: Any]] ?? []
            #expect(claims.isEmpty, "the lease's claim went with it: \(claims)")
            // The next client: the board is in its bootloader, halfway through a download.
            try await lab.post("/v1/devices/\(id)/interfaces/0/claim").expectStatus(200)
            let status = try await lab.post("/v1/devices/\(id)/control?request_type=0xa1&request=3&length=6")
            #expect(status.body.count == 6 && status.body[4] == 5, "dfuDNLOAD-IDLE: \(status.body)")
            try await lab.post("/v1/devices/\(id)/control?request_type=0x21&request=6").expectStatus(200)  // ABORT
            let idle = try await lab.post("/v1/devices/\(id)/control?request_type=0xa1&request=5&length=1")
            #expect(idle.body == [2], "dfuIDLE after ABORT")
            // Back to its firmware (the gadget's MODE request), then a whole flash goes through.
            let boot = try #require(try await lab.daemon.get("/v1/devices/\(id)").object()["address"] as? Int)
            try await lab.post("/v1/devices/\(id)/control?request_type=0x40&request=0x40").expectStatus(200)
            try await lab.daemon.get("/v1/wait?id=\(id)&not_address=\(boot)&product_id=0x0010&timeout_ms=20000").expectStatus(200)
            try await writeImage(lab, major: 5, minor: 0, name: "after.bin", size: 4096)
            let (flashed, log) = try await lab.runDetached(
                "sh \(Self.recipe) http://127.0.0.1:8080 \(id) \"$TMPDIR/after.bin\"", name: "dfu-after", within: 120)
            #expect(flashed == "0", "\(log)")
            try await expectFirmware(lab, id, "after.bin", bcd: 0x0500)
        }
    }
}

extension HTTPResult {
    /// Expects the answer's status; the answer, for more checks.
    @discardableResult
    func expectStatus(_ status: Int, sourceLocation: SourceLocation = #_sourceLocation) -> HTTPResult {
        #expect(self.status == status, "\(text)", sourceLocation: sourceLocation)
        return self
    }
}
