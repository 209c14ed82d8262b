/// A board flashed or reset by a client may come back as something else: a keyboard that types
/// on the host, a disk, a network adapter. The kernel would bind its driver at once, before any
/// policy is asked. This value decides, with no I/O, how the host keeps such a device from the
/// host's drivers (Linux's interface authorization, issue 24 class 3):
///
/// - A device a client was driving (its session open) leaves: its port is watched for
///   ``watchTime``, and its bus is armed (`interface_authorized_default` set to 0 on the root
///   hub: new interfaces get no driver until authorized).
/// - While a bus is armed, every device that arrives on it is looked at. On a watched port, its
///   interfaces the policy protects stay unauthorized (no host driver; the log says so) and the
///   others are authorized; the watch ends. Anywhere else, every interface is authorized, as
///   the kernel would have done: other devices are not the daemon's business.
/// - A bus with no watch left is disarmed (its default back to 1).
///
/// Only devices that arrived after the bus was armed are touched: interfaces someone else left
/// unauthorized (usbguard, the operator) stay as they are.
struct ReenumerationGuard: Sendable {
    /// How long a port is watched after a driven device left it (DFU's detach timeouts and a
    /// lease's grace are in this range).
    static let watchTime: Duration = .seconds(60)

    /// One interface of a device as a scan found it.
    struct Interface: Sendable, Equatable {
        /// Its sysfs name, "<device>:<configuration>.<number>".
        var name: String
        var authorized: Bool
        /// nil: the policy lets it have a driver; else why not.
        var protectedBecause: String?
    }

    /// A device bound (configured) now, with its interfaces.
    struct Device: Sendable, Equatable {
        var id: String
        var bus: UInt8
        var address: UInt8
        var interfaces: [Interface]
        /// Every interface of its configuration is in sysfs yet (the device's driver link comes
        /// before its interfaces): until then it is looked at again at the next scan.
        var ready = true

        var instance: String { "\(id)@\(address)" }
    }

    enum Action: Sendable, Equatable {
        /// `interface_authorized_default` of bus `bus`'s root hub to 0.
        case arm(bus: UInt8)
        /// … back to 1.
        case disarm(bus: UInt8)
        /// `authorized` of these interfaces to 1.
        case authorize(device: String, interfaces: [String])
        /// A device on a watched port came back with interfaces the policy protects: left
        /// without a driver (their names, each with why), for the log.
        case keptFromHost(device: String, interfaces: [String], why: [String])
    }

    private struct Watch {
        var bus: UInt8
        var until: ContinuousClock.Instant
    }

    private struct Armed {
        /// Instances bound when the bus was armed (or looked at since): not arrivals.
        var seen: Set<String>
    }

    private var watches: [String: Watch] = [:]
    private var armed: [UInt8: Armed] = [:]

    /// Ports watched now.
    var watchedPorts: [String] { watches.keys.sorted() }
    /// Buses armed now.
    var armedBuses: [UInt8] { armed.keys.sorted() }
    /// Whether device `id` at `address` on `bus` arrived on an armed bus and was not decided
    /// yet (its interfaces were not all made at the last scan): it is not to be used until then.
    func isUndecided(id: String, bus: UInt8, address: UInt8) -> Bool {
        guard let armed = armed[bus] else { return false }
        return !armed.seen.contains("\(id)@\(address)")
    }

    /// When the next watch runs out.
    var nextExpiry: ContinuousClock.Instant? { watches.values.map(\.until).min() }

    /// Device `id` on `bus`, which a client was driving, left; `present` is what is bound now.
    mutating func drivenDeviceLeft(id: String, bus: UInt8, present: [Device], now: ContinuousClock.Instant) -> [Action] {
        watches[id] = Watch(bus: bus, until: now + Self.watchTime)
        guard armed[bus] == nil else { return [] }
        armed[bus] = Armed(seen: Set(present.filter { $0.bus == bus }.map(\.instance)))
        return [.arm(bus: bus)]
    }

    /// A scan found `devices` bound: arrivals on armed buses are decided, watches that ran
    /// out end, and buses with no watch left are disarmed.
    mutating func scanned(_ devices: [Device], now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for device in devices.sorted(by: { $0.id < $1.id }) {
            guard device.ready, var bus = armed[device.bus], !bus.seen.contains(device.instance) else { continue }
            bus.seen.insert(device.instance)
            armed[device.bus] = bus
            let waiting = device.interfaces.filter { !$0.authorized }
            if watches.removeValue(forKey: device.id) != nil {
                let kept = waiting.filter { $0.protectedBecause != nil }
                let allowed = waiting.filter { $0.protectedBecause == nil }
                if !allowed.isEmpty { actions.append(.authorize(device: device.id, interfaces: allowed.map(\.name))) }
                if !kept.isEmpty {
                    actions.append(
                        .keptFromHost(device: device.id, interfaces: kept.map(\.name), why: kept.map { $0.protectedBecause ?? "" }))
                }
            } else if !waiting.isEmpty {
                actions.append(.authorize(device: device.id, interfaces: waiting.map(\.name)))
            }
        }
        for (port, watch) in watches where watch.until <= now { watches[port] = nil }
        let watchedBuses = Set(watches.values.map(\.bus))
        for bus in armed.keys.sorted() where !watchedBuses.contains(bus) {
            armed[bus] = nil
            actions.append(.disarm(bus: bus))
        }
        return actions
    }

    /// The daemon stops: every armed bus is disarmed.
    mutating func stop() -> [Action] {
        watches = [:]
        defer { armed = [:] }
        return armed.keys.sorted().map { .disarm(bus: $0) }
    }
}
