import Testing

@testable import USB

/// Issue 24, class 3: what comes back on a port a client drove gets no host driver the policy
/// protects; everything else on the bus is authorized as the kernel would have it.
@Suite struct ReenumerationGuardTests {
    typealias Device = ReenumerationGuard.Device
    typealias Interface = ReenumerationGuard.Interface

    static let now = ContinuousClock.now
    static let board = Device(id: "3-1", bus: 3, address: 2, interfaces: [Interface(name: "3-1:1.0", authorized: true)])
    static let keyboard = Device(
        id: "3-1", bus: 3, address: 3,
        interfaces: [
            Interface(name: "3-1:1.0", authorized: false, protectedBecause: "a HID boot keyboard"),
            Interface(name: "3-1:1.1", authorized: false),
        ])
    static let stranger = Device(id: "3-2", bus: 3, address: 4, interfaces: [Interface(name: "3-2:1.0", authorized: false)])
    static let neighbour = Device(id: "3-3", bus: 3, address: 5, interfaces: [Interface(name: "3-3:1.0", authorized: false)])

    @Test func aDrivenBoardThatComesBackAsAKeyboardKeepsItFromTheHost() {
        var guard_ = ReenumerationGuard()
        #expect(guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [Self.neighbour], now: Self.now) == [.arm(bus: 3)])
        #expect(guard_.watchedPorts == ["3-1"] && guard_.armedBuses == [3])
        // Gone: nothing to do yet (the neighbour was there before: not touched, even unauthorized).
        #expect(guard_.scanned([Self.neighbour], now: Self.now).isEmpty)
        // Back as a keyboard with a vendor interface beside it.
        let actions = guard_.scanned([Self.neighbour, Self.keyboard], now: Self.now + .seconds(1))
        #expect(
            actions == [
                .authorize(device: "3-1", interfaces: ["3-1:1.1"]),
                .keptFromHost(device: "3-1", interfaces: ["3-1:1.0"], why: ["a HID boot keyboard"]),
                .disarm(bus: 3),
            ])
        #expect(guard_.watchedPorts.isEmpty && guard_.armedBuses.isEmpty)
        // Later scans touch nothing: the bus is no longer armed.
        #expect(guard_.scanned([Self.neighbour, Self.keyboard], now: Self.now + .seconds(2)).isEmpty)
    }

    @Test func othersArrivingOnAnArmedBusAreAuthorizedAsUsual() {
        var guard_ = ReenumerationGuard()
        _ = guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [], now: Self.now)
        #expect(guard_.scanned([Self.stranger], now: Self.now) == [.authorize(device: "3-2", interfaces: ["3-2:1.0"])])
        #expect(guard_.scanned([Self.stranger], now: Self.now).isEmpty, "each arrival once")
        #expect(guard_.armedBuses == [3], "still watching 3-1")
    }

    @Test func aWatchRunsOutAndItsBusIsDisarmed() {
        var guard_ = ReenumerationGuard()
        _ = guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [], now: Self.now)
        #expect(guard_.nextExpiry == Self.now + ReenumerationGuard.watchTime)
        #expect(guard_.scanned([], now: Self.now + .seconds(59)).isEmpty)
        #expect(guard_.scanned([], now: Self.now + .seconds(60)) == [.disarm(bus: 3)])
        // What comes back after the watch is an ordinary arrival: not touched.
        #expect(guard_.scanned([Self.keyboard], now: Self.now + .seconds(61)).isEmpty)
    }

    @Test func twoPortsOnOneBusArmItOnceAndDisarmItAfterTheLast() {
        var guard_ = ReenumerationGuard()
        #expect(guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [], now: Self.now) == [.arm(bus: 3)])
        #expect(guard_.drivenDeviceLeft(id: "3-2", bus: 3, present: [], now: Self.now).isEmpty)
        let first = guard_.scanned([Self.keyboard], now: Self.now)
        #expect(!first.contains(.disarm(bus: 3)), "3-2 is still watched")
        let allowed = Device(id: "3-2", bus: 3, address: 9, interfaces: [Interface(name: "3-2:1.0", authorized: false)])
        #expect(guard_.scanned([Self.keyboard, allowed], now: Self.now) == [.authorize(device: "3-2", interfaces: ["3-2:1.0"]), .disarm(bus: 3)])
    }

    /// The device's driver link comes before its interfaces: a device seen without them is
    /// looked at again, not passed over for good.
    @Test func aDeviceWhoseInterfacesAreNotMadeYetIsLookedAtAgain() {
        var guard_ = ReenumerationGuard()
        _ = guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [], now: Self.now)
        var early = Self.keyboard
        early.interfaces = []
        early.ready = false
        #expect(guard_.scanned([early], now: Self.now).isEmpty)
        #expect(guard_.watchedPorts == ["3-1"])
        #expect(guard_.scanned([Self.keyboard], now: Self.now).contains(.disarm(bus: 3)))
    }

    @Test func theDaemonStoppingDisarmsEverything() {
        var guard_ = ReenumerationGuard()
        _ = guard_.drivenDeviceLeft(id: "3-1", bus: 3, present: [], now: Self.now)
        _ = guard_.drivenDeviceLeft(id: "5-1", bus: 5, present: [], now: Self.now)
        #expect(guard_.stop() == [.disarm(bus: 3), .disarm(bus: 5)])
        #expect(guard_.armedBuses.isEmpty && guard_.watchedPorts.isEmpty)
    }
}
