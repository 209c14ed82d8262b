import Foundation
import Testing
import TestSupport

extension InTheLab {
    /// Issue 24, class 8: the container image, built from Debian's packages by
    /// script/container-image (the Dockerfile's runtime stage; no registry is reachable here),
    /// imported into podman in the guest with the Dockerfile's USER and ENTRYPOINT and run as the
    /// Kubernetes manifest runs it: as its unprivileged user, with a read-only root, one device
    /// passed with --device. It serves that device, and no other.
    @Suite struct ContainerTests {
        static let rootfs = LabSession.root.appendingPathComponent(".build-lab/container/usbhttpd-rootfs.tar").path
        static let port = 8094

        @Test func theImageServesItsDeviceAsItsUserOnAReadOnlyRoot() async throws {
            try #require(
                FileManager.default.fileExists(atPath: Self.rootfs),
                "no \(Self.rootfs): run script/container-image (script/test does)")
            let lab = try await Lab.shared.session()
            let id = try await lab.deviceID(serial: LabSession.loopback)
            let other = try await lab.deviceID(serial: LabSession.sourceSink)
            try await lab.released(id)
            let place = try await lab.run("cat /sys/bus/usb/devices/\(id)/busnum /sys/bus/usb/devices/\(id)/devnum")
            let numbers = place.split(separator: "\n").compactMap { Int($0) }
            try #require(numbers.count == 2, "\(place)")
            let node = String(format: "/dev/bus/usb/%03d/%03d", numbers[0], numbers[1])
            // podman keeps its storage, networks and temporary files on the guest's /run (its root
            // is read-only); the device node is given to the container user's group, as the udev
            // rule in deploy/systemd does on a host.
            let (status, output) = try await lab.runDetached(
                """
                set -e
                mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
                mkdir -p /run/podman
                printf '[storage]\\ndriver = "overlay"\\nrunroot = "/run/podman/run"\\ngraphroot = "/run/podman/storage"\\n' > "$TMPDIR/storage.conf"
                printf '[network]\\nnetwork_config_dir = "/run/podman/networks"\\n[engine]\\nimage_copy_tmp_dir = "/run/podman/tmp"\\n' > "$TMPDIR/containers.conf"
                export CONTAINERS_STORAGE_CONF="$TMPDIR/storage.conf" CONTAINERS_CONF="$TMPDIR/containers.conf"
                mkdir -p /run/podman/tmp /run/podman/networks
                podman rm -f usbhttpd-image-test > /dev/null 2>&1 || true
                podman image exists localhost/usbhttpd:test || podman import --quiet \\
                  --change 'USER 10001' --change 'ENTRYPOINT ["/usr/local/bin/usbhttpd"]' \\
                  \(Self.rootfs) localhost/usbhttpd:test > /dev/null
                chown root:10001 \(node); chmod 0660 \(node)
                podman run -d --name usbhttpd-image-test --network host --read-only --group-add 10001 \\
                  --device \(node) localhost/usbhttpd:test --host 127.0.0.1 --port \(Self.port) > /dev/null
                for i in $(seq 300); do curl -sf http://127.0.0.1:\(Self.port)/readyz > /dev/null && break; sleep 0.1; done
                pid=$(podman inspect --format '{{.State.Pid}}' usbhttpd-image-test)
                echo "uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status)"
                echo "$(podman inspect --format 'readonly={{.HostConfig.ReadonlyRootfs}} user={{.Config.User}} privileged={{.HostConfig.Privileged}}' usbhttpd-image-test)"
                echo "claim=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:\(Self.port)/v1/devices/\(id)/interfaces/0/claim)"
                echo "other=$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:\(Self.port)/v1/devices/\(other)/interfaces/0/claim)"
                echo "release=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE http://127.0.0.1:\(Self.port)/v1/devices/\(id)/interfaces/0/claim)"
                podman rm -f usbhttpd-image-test > /dev/null
                chown root:root \(node); chmod 0600 \(node)
                """, name: "container", within: 480)
            #expect(status == "0", "\(output)")
            #expect(output.contains("uid=10001"), "runs as its user: \(output)")
            #expect(output.contains("readonly=true user=10001 privileged=false"), "\(output)")
            #expect(output.contains("claim=200"), "serves the device passed to it: \(output)")
            #expect(output.contains("other=410"), "and no other (its node is not in the container): \(output)")
            #expect(output.contains("release=200"), "\(output)")
        }
    }
}
