import EventLoop
import LinuxSystem
import Logging
import SystemPackage
import Synchronization
import Testing
import TestSupport

@testable import Consoles

/// A console over a pseudo-terminal (no USB: the console's logic, not a USB serial chip's):
/// what the board prints is kept and handed to every reader, one writer types, the line
/// settings reach the tty, and the board hanging up ends it all.
@Suite struct ConsoleTests {
    static let loop = try! EventLoop(name: "test-console", logger: Logger(label: "test"))

    func onLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Self.loop.execute { continuation.resume(with: Result { try body() }) }
        }
    }

    func open(_ board: PseudoTerminal, capacity: Int = 1 << 16) async throws -> Console {
        try await onLoop {
            let console = try Console(
                info: ConsoleInfo(device: "1-1", interface: 0, tty: board.name, driver: "pty"), loop: Self.loop,
                ringCapacity: capacity, logger: Logger(label: "test"))
            try console.start()
            return console
        }
    }

    @Test func whatTheBoardPrintsIsKeptForEveryReaderHoweverLate() async throws {
        let board = try PseudoTerminal()
        let console = try await open(board)
        let woken = Atomic(0)
        _ = try await onLoop { console.follow { woken.add(1, ordering: .relaxed) } }
        board.print("U-Boot 2024.01\r\nbooting...\r\n")
        #expect(await eventually { (try? await onLoop { console.ring.end }) == 28 })
        #expect(woken.load(ordering: .relaxed) > 0, "a follower is woken")
        let late = try await onLoop { console.ring.read(from: 0).bytes }
        #expect(late == Array("U-Boot 2024.01\r\nbooting...\r\n".utf8), "a reader that comes later reads the boot log")
    }

    @Test func oneWriterTypesAndASecondIsRefused() async throws {
        let board = try PseudoTerminal()
        let console = try await open(board)
        let (first, second) = try await onLoop { (console.takeWriter("a"), console.takeWriter("b")) }
        #expect(first && !second)
        let typed = try await withCheckedThrowingContinuation { continuation in
            Self.loop.execute { console.type(Array("help\r".utf8)) { continuation.resume(returning: $0) } }
        }
        #expect(typed)
        #expect(board.read() == Array("help\r".utf8))
        let third = try await onLoop {
            console.releaseWriter("a")
            return console.takeWriter("b")
        }
        #expect(third, "the writer is free once let go")
    }

    /// A pseudo-terminal keeps the baud rate, stop bits and flow control it is given, and is
    /// always 8 bits without parity (the lab's serial chips are asked for those).
    @Test func lineSettingsReachTheTTYAnyBaudRate() async throws {
        let board = try PseudoTerminal()
        let console = try await open(board)
        let line = try await onLoop {
            try console.setLine(Terminal.Line(baud: 74880, dataBits: 7, parity: .even, stopBits: 2, hardwareFlow: true))
            return try console.line()
        }
        #expect(line.baud == 74880 && line.stopBits == 2 && line.hardwareFlow && !line.softwareFlow)
        let refused = try await onLoop { () -> Bool in
            do {
                try console.setLine(Terminal.Line(baud: 9600, dataBits: 9))
                return false
            } catch {
                return (error as? Errno) == .invalidArgument
            }
        }
        #expect(refused, "nine data bits: EINVAL, the line unchanged")
    }

    @Test func theBoardHangingUpEndsTheConsoleItsReadersAndItsWriter() async throws {
        let board = try PseudoTerminal()
        let console = try await open(board)
        let woken = Atomic(0)
        let goneHeard = Atomic(false)
        _ = try await onLoop {
            _ = console.follow { woken.add(1, ordering: .relaxed) }
            console.whenGone { goneHeard.store(true, ordering: .relaxed) }
        }
        board.print("last words\r\n")
        // A hang-up flushes what the tty had not read yet (as an unplug does): read first.
        #expect(await eventually { (try? await onLoop { console.ring.end }) == 12 })
        board.hangUp()
        #expect(await eventually { (try? await onLoop { console.isGone }) == true })
        #expect(goneHeard.load(ordering: .relaxed) && woken.load(ordering: .relaxed) > 0)
        let kept = try await onLoop { console.ring.read(from: 0).bytes }
        #expect(kept == Array("last words\r\n".utf8), "what came before the hang-up is kept")
        let typed = try await withCheckedThrowingContinuation { continuation in
            Self.loop.execute { console.type([1]) { continuation.resume(returning: $0) } }
        }
        #expect(!typed, "nothing can be typed on a console that is gone")
        let writer = try await onLoop { console.takeWriter("late") }
        #expect(!writer)
    }
}
