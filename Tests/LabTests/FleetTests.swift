import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Three daemons in the lab as a fleet of nodes: each serves one bus (a policy rule), has
    /// its node name and keeps its NFD feature file; a gadget moved to another bus moves to
    /// another node, in the lists and in the labels; the Python client's fleet view finds the
    /// daemons through one name resolving to all of them (a hosts entry standing in for a
    /// headless Service's DNS name).
    @Suite struct FleetTests {
        static let port = 8070
        static let nodes = ["node-a": "127.0.0.2", "node-b": "127.0.0.3", "node-c": "127.0.0.4"]
        static let tokens = ["ci-1": "fleet-token-one-0123456789abcdef", "ci-2": "fleet-token-two-0123456789abcdef"]
        static let folder = "\"$TMPDIR/fleet\""

        @Test func aGadgetMovedToAnotherBusMovesToAnotherNodeInListsLabelsAndTheFleetClient() async throws {
            try #require(
                FileManager.default.isExecutableFile(atPath: PythonClientTests.venv),
                "no \(PythonClientTests.venv): run script/python-client (script/test does)")
            let lab = try await Lab.shared.session()
            var buses: [String: Int] = [:]
            for (node, udc) in [("node-a", "dummy_udc.0"), ("node-b", "dummy_udc.1"), ("node-c", "dummy_udc.4")] {
                buses[node] = try #require(try await lab.replug("bus \(udc)")["bus"] as? Int)
            }
            try await start(lab, buses: buses)
            do {
                try await check(lab)
            } catch {
                _ = try? await lab.replug("unplug loopback")
                _ = try? await lab.replug("plug loopback")
                _ = try? await lab.run("kill $(cat \(Self.folder)/pids) || true")
                throw error
            }
        }

        func start(_ lab: LabSession, buses: [String: Int]) async throws {
            var script = """
                mkdir -p \(Self.folder)
                rm -f \(Self.folder)/pids
                printf 'ci-1 transfer \(Self.tokens["ci-1"]!)\\nci-2 transfer \(Self.tokens["ci-2"]!)\\n' > \(Self.folder)/tokens
                chmod 600 \(Self.folder)/tokens
                # Issue 24, class 6: links planted where node-a's feature file is written (its
                # old fixed temporary name and its place) toward a file root must not touch.
                mkdir -p \(Self.folder)/node-a
                printf 'precious\\n' > \(Self.folder)/victim
                ln -sfn ../victim \(Self.folder)/node-a/.usbhttpd.tmp
                ln -sfn ../victim \(Self.folder)/node-a/usbhttpd

                """
            for (node, address) in Self.nodes.sorted(by: { $0.key < $1.key }) {
                script += """
                    mkdir -p \(Self.folder)/\(node)
                    setsid \(LabSession.daemonBinary) --host \(address) --port \(Self.port) --node-name \(node) \\
                      --token-file \(Self.folder)/tokens --rule 'allow bus=\(buses[node]!)' --rule deny \\
                      --feature-file \(Self.folder)/\(node)/usbhttpd > \(Self.folder)/\(node).log 2>&1 &
                    echo $! >> \(Self.folder)/pids

                    """
            }
            for address in Self.nodes.values {
                script += "for i in $(seq 300); do curl -sf http://\(address):\(Self.port)/readyz > /dev/null && break; sleep 0.1; done\n"
            }
            try await lab.run(script)
        }

        func check(_ lab: LabSession) async throws {
            // Each daemon lists its bus's device, saying which node it is.
            #expect(try await serials(lab, "node-a") == ["lab-sourcesink": "node-a"])
            #expect(try await serials(lab, "node-b") == ["lab-loopback": "node-b"])
            #expect(try await serials(lab, "node-c") == [:])
            // Their feature files: by vendor/product and serial; nothing of other buses.
            let a = try await features(lab, "node-a", with: "usbhttpd.serial-lab-sourcesink=true")
            #expect(a.contains("usbhttpd.usb-1209-0001=1") && a.contains("usbhttpd.devices=1") && !a.contains("lab-loopback"), "\(a)")
            #expect(a.contains("# +expiry-time="), "\(a)")
            let planted = try await lab.run(
                "cat \(Self.folder)/victim; stat -c %F \(Self.folder)/node-a/usbhttpd \(Self.folder)/node-a/.usbhttpd.tmp")
            #expect(planted == "precious\nregular file\nsymbolic link\n", "the links were replaced, never followed: \(planted)")
            _ = try await features(lab, "node-b", with: "usbhttpd.serial-lab-loopback=true")
            _ = try await features(lab, "node-c", with: "usbhttpd.devices=0")

            // The Loopback gadget moves to node-c's bus: the labels follow.
            try await lab.replug("unplug loopback")
            try await lab.replug("plug loopback dummy_udc.4")
            let c = try await features(lab, "node-c", with: "usbhttpd.serial-lab-loopback=true")
            #expect(c.contains("usbhttpd.usb-1209-0002=1") && c.contains("usbhttpd.devices=1"), "\(c)")
            let b = try await features(lab, "node-b", with: "usbhttpd.devices=0")
            #expect(!b.contains("lab-loopback"), "\(b)")
            #expect(try await serials(lab, "node-c") == ["lab-loopback": "node-c"])

            // The Python client's fleet view, through one name for all the daemons and one
            // address where nothing answers.
            let hosts = (["127.0.0.1 localhost"] + Self.nodes.values.sorted().map { "\($0) usbhttpd-fleet" }
                + ["127.0.0.5 usbhttpd-fleet"]).joined(separator: "\\n")
            let (status, log) = try await lab.runDetached(
                """
                printf '\(hosts)\\n' > \(Self.folder)/hosts
                cd \(LabSession.root.path) && FLEET_NAME=usbhttpd-fleet FLEET_PORT=\(Self.port) \\
                  FLEET_TOKEN_1=\(Self.tokens["ci-1"]!) FLEET_TOKEN_2=\(Self.tokens["ci-2"]!) FLEET_LOOPBACK_NODE=node-c \\
                  PYTHONDONTWRITEBYTECODE=1 unshare -m sh -c \\
                  "mount --bind $TMPDIR/fleet/hosts /etc/hosts && exec \(PythonClientTests.venv) -m pytest -q -p no:cacheprovider --capture=sys clients/python/tests/lab/test_fleet.py"
                """, name: "fleet-client")
            #expect(status == "0", "pytest in the guest: status '\(status)'\n\(log)")

            // Back home.
            try await lab.replug("unplug loopback")
            try await lab.replug("plug loopback")
            _ = try await features(lab, "node-b", with: "usbhttpd.serial-lab-loopback=true")
            _ = try await features(lab, "node-c", with: "usbhttpd.devices=0")

            // Stopped, a daemon takes its labels away.
            let gone = try await lab.run(
                """
                pids=$(cat \(Self.folder)/pids)
                kill -TERM $pids
                for i in $(seq 300); do
                  alive=0; for p in $pids; do kill -0 $p 2> /dev/null && alive=1; done
                  [ $alive = 0 ] && break; sleep 0.1
                done
                ls \(Self.folder)/node-a \(Self.folder)/node-b \(Self.folder)/node-c
                """)
            #expect(gone.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").allSatisfy { $0.hasSuffix(":") }, "\(gone)")
        }

        /// The lab gadgets node's daemon lists: serial → node.
        func serials(_ lab: LabSession, _ node: String) async throws -> [String: String] {
            let text = try await lab.run(
                "curl -sf -H 'Authorization: Bearer \(Self.tokens["ci-1"]!)' http://\(Self.nodes[node]!):\(Self.port)/v1/devices")
            let listing = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
            var found: [String: String] = [:]
            for device in listing["devices"] as? [[String: Any]] ?? [] {
                if let serial = device["serial"] as? String, serial.hasPrefix("lab-") { found[serial] = device["node"] as? String }
            }
            return found
        }

        /// Node `node`'s feature file once it holds the line `line` (20 s at most).
        func features(_ lab: LabSession, _ node: String, with line: String) async throws -> String {
            let deadline = ContinuousClock.now + .seconds(20)
            var text = ""
            while ContinuousClock.now < deadline {
                text = try await lab.run("cat \(Self.folder)/\(node)/usbhttpd 2>/dev/null || true")
                if text.split(separator: "\n").contains(Substring(line)) { return text }
                try await Task.sleep(for: .milliseconds(200))
            }
            Issue.record("\(node)'s feature file never held \(line):\n\(text)")
            return text
        }
    }
}
