import Foundation
import Testing
import USB

@testable import USBService

/// docs/urb-channel.md and the daemon's one file of message layouts (URBMessages.swift) say the
/// same: the kinds, operations, statuses, transfer types and sizes a client writes from the page.
@Suite struct URBMessageTests {
    static let page: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/urb-channel.md"), encoding: .utf8)) ?? ""
    }()

    /// The rows of the page's tables whose first cell matches `first` and second `second`.
    static func rows(_ first: String, _ second: String) -> [(String, String)] {
        page.split(separator: "\n").compactMap { line -> (String, String)? in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, cells[0].range(of: first, options: .regularExpression) != nil,
                cells[1].range(of: second, options: .regularExpression) != nil
            else { return nil }
            return (cells[0], cells[1])
        }
    }

    @Test func theKindsAreThePages() {
        let kinds = Dictionary(uniqueKeysWithValues: Self.rows("^0x[0-9a-f]{2}$", "^[A-Z]+$").map { ($1, UInt8($0.dropFirst(2), radix: 16)!) })
        let code: [String: URBMessage.Kind] = [
            "SUBMIT": .submit, "CANCEL": .cancel, "OPERATION": .operation, "HELLO": .hello, "COMPLETE": .complete,
            "RESULT": .result, "EVENT": .event,
        ]
        #expect(Set(kinds.keys) == Set(code.keys))
        for (name, kind) in code { #expect(kinds[name] == kind.rawValue, "\(name)") }
    }

    @Test func theOperationsAreThePages() {
        let ops = Dictionary(uniqueKeysWithValues: Self.rows("^[0-9]{1,2}$", "^[A-Z_]+$").map { ($1, UInt8($0)!) })
        let names: [URBMessage.Operation: String] = [
            .claimInterface: "CLAIM_INTERFACE", .releaseInterface: "RELEASE_INTERFACE", .setAltSetting: "SET_ALT_SETTING",
            .clearHalt: "CLEAR_HALT", .resetDevice: "RESET_DEVICE", .kernelDriverActive: "KERNEL_DRIVER_ACTIVE",
            .detachKernelDriver: "DETACH_KERNEL_DRIVER", .attachKernelDriver: "ATTACH_KERNEL_DRIVER",
            .setConfiguration: "SET_CONFIGURATION", .getConfiguration: "GET_CONFIGURATION", .useLease: "USE_LEASE",
        ]
        #expect(names.count == URBMessage.Operation.allCases.count)
        for operation in URBMessage.Operation.allCases {
            #expect(ops[names[operation]!] == operation.rawValue, "\(operation)")
        }
    }

    @Test func theStatusesAndTypesAreLibusbs() {
        let statuses = Dictionary(uniqueKeysWithValues: Self.rows("^[A-Z_]+$", "^[0-9]$").map { ($0, UInt8($1)!) })
        let expected: [String: TransferStatus] = [
            "COMPLETED": .completed, "ERROR": .error, "TIMED_OUT": .timedOut, "CANCELLED": .cancelled, "STALL": .stall,
            "NO_DEVICE": .noDevice, "OVERFLOW": .overflow,
        ]
        for (name, status) in expected { #expect(statuses[name] == status.libusbCode, "\(name)") }
        // The metrics index their counters by the code: allCases is in libusb's order.
        for (index, status) in TransferStatus.allCases.enumerated() { #expect(Int(status.libusbCode) == index) }
        let types = Dictionary(uniqueKeysWithValues: Self.rows("^(control|isochronous|bulk|interrupt)$", "^[0-3]$").map { ($0, UInt8($1)!) })
        for type in [TransferType.control, .isochronous, .bulk, .interrupt] { #expect(types[type.name] == type.rawValue) }
    }

    @Test func theSizesAreThePages() {
        let sizes: [(String, Int)] = [
            ("HELLO (daemon, first message) — 32 bytes", URBMessage.helloHeader),
            ("SUBMIT (client) — 24 bytes", URBMessage.submitHeader), ("CANCEL (client) — 8 bytes", URBMessage.cancelSize),
            ("OPERATION (client) — 16 bytes (USE_LEASE: then its token)", URBMessage.operationSize),
            ("COMPLETE (daemon) — 16 bytes", URBMessage.completeHeader), ("RESULT (daemon) — 16 bytes", URBMessage.resultHeader),
            ("EVENT (daemon) — 8 bytes", URBMessage.eventSize),
        ]
        for (heading, size) in sizes {
            #expect(Self.page.contains("### \(heading)"), "\(heading)")
            #expect(heading.contains("— \(size) bytes"))
        }
        let hello = URBMessage.Hello(
            maxInFlight: 1, maxTransfer: 2, maxMessage: 3, bus: 4, address: 5, speed: 6, configuration: 7, maxTimeout: 8,
            maxBytesInFlight: 9, scope: 1, device: "1-2").bytes
        #expect(hello.count == 32 + 3 && hello[16] == 4 && hello[17] == 5 && hello[28] == 1)
        #expect(URBMessage.complete(id: 1, status: .stall, actualLength: 2).count == URBMessage.completeHeader)
        #expect(URBMessage.result(.clearHalt, id: 1, error: -9).count == URBMessage.resultHeader)
        #expect(URBMessage.event(.deviceGone, bus: 1, address: 2).count == URBMessage.eventSize)
    }
}
