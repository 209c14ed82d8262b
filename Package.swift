// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "usbhttpd",
    products: [
        .executable(name: "usbhttpd", targets: ["usbhttpd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // C libraries, each with a shim for what Swift cannot import.
        .systemLibrary(
            name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(
            name: "CLibUSB", pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"])]),

        // GnuTLS (libmicrohttpd's TLS library): SHA-256 of tokens, SHA-1 of the WebSocket
        // handshake, and the records of a TLS connection taken over for a WebSocket.
        .systemLibrary(name: "CGnuTLS", pkgConfig: "gnutls", providers: [.apt(["libgnutls28-dev"])]),

        // Linux headers Swift's Glibc module leaves out (epoll, eventfd, netlink, inotify).
        .systemLibrary(name: "CLinux"),
        // A tty's termios2 and modem lines: C of its own, since <asm/termbits.h> clashes with
        // the Glibc module's <termios.h>, and ioctl(2) is variadic.
        .target(name: "CLinuxTTY"),

        // Named threads (the event loops' and the lab tests').
        .target(name: "Threads"),

        // Typed wrappers over the Linux calls the daemon makes itself (epoll, eventfd, sendmsg),
        // on swift-system's Errno and FileDescriptor: one path to each C call, results never ignored.
        .target(
            name: "LinuxSystem",
            dependencies: ["CLinux", "CLinuxTTY", .product(name: "SystemPackage", package: "swift-system")]),

        // The one thread that serves libmicrohttpd, libusb and client sockets, and the
        // executor of device actors and request tasks.
        .target(
            name: "EventLoop",
            dependencies: ["LinuxSystem", "Threads", .product(name: "Logging", package: "swift-log")]),

        // HTTP, knowing nothing of USB: the libmicrohttpd server, then routing and problems.
        .target(
            name: "HTTPServer",
            dependencies: [
                "CMicroHTTPD", "CLinux", "CGnuTLS", "EventLoop", "LinuxSystem", "Threads",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "HTTPRouting",
            dependencies: ["HTTPServer", .product(name: "CoreMetrics", package: "swift-metrics")]),

        // USB, knowing nothing of HTTP: typed wrappers over libusb.
        .target(
            name: "USB",
            dependencies: [
                "CLibUSB", "CLinux", "EventLoop", "LinuxSystem", "Threads", .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]),

        // Serial consoles: a USB serial interface's tty (found in sysfs, never named by a
        // client), its line and modem lines, and the ring of its recent output. Beside USB (it
        // reads USB's sysfs), not inside it: a console is a tty, not usbfs.
        .target(
            name: "Consoles",
            dependencies: [
                "USB", "EventLoop", "LinuxSystem", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),

        // The bench page: its files (the `files` folder: HTML, CSS, JavaScript, no build step)
        // embedded at build time and served at `/`; the page uses the public API like any client.
        .target(
            name: "BenchPage", dependencies: ["HTTPServer", "HTTPRouting"], exclude: ["files"], plugins: ["Embed"]),

        // The service that joins them: the /v1 API (serving the openapi.yaml it was built with).
        .target(
            name: "USBService",
            dependencies: [
                "HTTPServer", "HTTPRouting", "USB", "Consoles", "BenchPage", "CGnuTLS", "LinuxSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            plugins: ["Embed"]),
        .executableTarget(name: "embed-file"),
        .plugin(name: "Embed", capability: .buildTool(), dependencies: ["embed-file"]),

        .executableTarget(
            name: "usbhttpd",
            dependencies: [
                "USBService", "HTTPServer", "USB", "Consoles", "EventLoop",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        // Helpers shared by the test targets (an HTTP client, problem checks).
        .target(name: "TestSupport", dependencies: ["CLinuxTTY"], path: "Tests/TestSupport"),
        // A scripted device below DeviceSession (a DeviceIO, no USB), for unit tests of the
        // session, the routes and the streams.
        .target(name: "USBFakes", dependencies: ["USB", "EventLoop"], path: "Tests/USBFakes"),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "HTTPRouting", "LinuxSystem", "Threads", "TestSupport"]),
        .testTarget(name: "ThreadsTests", dependencies: ["Threads", "EventLoop", "LinuxSystem"]),
        .testTarget(
            name: "ConsolesTests",
            dependencies: [
                "Consoles", "EventLoop", "LinuxSystem", "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "USBTests",
            dependencies: [
                "USB", "USBFakes", "EventLoop", "LinuxSystem", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .testTarget(
            name: "USBServiceTests",
            dependencies: [
                "USBService", "HTTPRouting", "HTTPServer", "USB", "USBFakes", "EventLoop", "TestSupport", "Consoles", "BenchPage",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // Runs the real daemon in the virtual USB lab (lab/lab), booted once for the suite.
        .testTarget(name: "LabTests", dependencies: ["usbhttpd", "TestSupport", "CLinux"]),
    ]
)
