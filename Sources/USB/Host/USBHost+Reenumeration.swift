import Glibc
import LinuxSystem
import Logging
import SystemPackage

/// The host's side of ``ReenumerationGuard``: the scans it sees, and the sysfs writes it asks for.
extension USBHost {
    /// After a scan: devices a client drove that left are watched, arrivals on armed buses
    /// decided, and the next expiry scheduled.
    func guardReenumerations(scanned: [SysfsDevice], drivenLeft: [USBDeviceInfo]) {
        guard reenumerationWritable else { return }
        let now = ContinuousClock.now
        var actions: [ReenumerationGuard.Action] = []
        if !drivenLeft.isEmpty {
            let present = guardedDevices(scanned, buses: Set(drivenLeft.map(\.bus)))
            for info in drivenLeft {
                actions += reenumeration.drivenDeviceLeft(id: info.id, bus: info.bus, present: present, now: now)
                logger.info(
                    "a device a client drove left: its port is watched, and what comes back there gets no host driver the policy protects",
                    metadata: ["usb.device": "\(info.id)", "usb.watch_s": "\(ReenumerationGuard.watchTime.components.seconds)"])
            }
        }
        perform(actions)
        let armed = Set(reenumeration.armedBuses)
        guard !armed.isEmpty else { return }
        perform(reenumeration.scanned(guardedDevices(scanned, buses: armed), now: now))
        scheduleReenumerationExpiry()
    }

    /// The bound devices of `buses` in `scanned`, with each interface's authorization and
    /// whether the policy protects it.
    private func guardedDevices(_ scanned: [SysfsDevice], buses: Set<UInt8>) -> [ReenumerationGuard.Device] {
        scanned.compactMap { device -> ReenumerationGuard.Device? in
            guard device.isBound, buses.contains(device.bus), !device.name.hasPrefix("usb") else { return nil }
            var interfaces: [ReenumerationGuard.Interface] = []
            var ready = true
            if let info = try? DeviceRoster.info(device), let value = device.activeConfiguration,
                let configuration = info.configurations.first(where: { $0.value == value })
            {
                for interface in configuration.interfaces {
                    guard let alt = interface.altSettings.first else { continue }
                    let name = "\(device.name):\(value).\(interface.number)"
                    let access = roster.policy.access(
                        toInterfaceClass: alt.interfaceClass, subclass: alt.interfaceSubClass, protocol: alt.interfaceProtocol,
                        of: info, interface: interface.number)
                    var why: String?
                    if case .protected(let reason) = access { why = reason }
                    guard let authorized = Sysfs.attribute("\(sysfsRoot)/\(name)/authorized") else {
                        ready = false  // not made yet
                        continue
                    }
                    interfaces.append(.init(name: name, authorized: authorized != "0", protectedBecause: why))
                }
            }
            return .init(id: device.name, bus: device.bus, address: device.address, interfaces: interfaces, ready: ready)
        }
    }

    /// Does what the guard asks: sysfs writes and the log.
    func perform(_ actions: [ReenumerationGuard.Action]) {
        for action in actions {
            switch action {
            case .arm(let bus):
                write("\(sysfsRoot)/usb\(bus)/interface_authorized_default", "0", bus: bus, what: "arm")
            case .disarm(let bus):
                write("\(sysfsRoot)/usb\(bus)/interface_authorized_default", "1", bus: bus, what: "disarm")
            case .authorize(let device, let interfaces):
                // All authorized first, then each probed (the kernel does not probe an
                // interface authorized late by itself; a driver that takes several interfaces
                // finds them all authorized: Documentation/usb/authorization.rst).
                for interface in interfaces { write("\(sysfsRoot)/\(interface)/authorized", "1", bus: nil, what: "authorize") }
                for interface in interfaces { write("\(sysfsRoot)/../drivers_probe", interface, bus: nil, what: "probe") }
                logger.debug("interfaces authorized", metadata: ["usb.device": "\(device)", "usb.interfaces": "\(interfaces)"])
            case .keptFromHost(let device, let interfaces, let why):
                logger.notice(
                    "a device a client drove came back with interfaces the policy protects: they get no host driver",
                    metadata: ["usb.device": "\(device)", "usb.interfaces": "\(interfaces)", "usb.why": "\(why)"])
            }
        }
    }

    private func write(_ path: String, _ value: String, bus: UInt8?, what: String) {
        do throws(Errno) {
            try AttributeFile.write(path, value)
            if let bus { logger.info("bus \(what)ed: new interfaces wait for the daemon", metadata: ["usb.bus": "\(bus)"]) }
        } catch {
            guard error == .permissionDenied || error == .notPermitted || error == .readOnlyFileSystem else {
                logger.warning("a sysfs write failed", metadata: ["sysfs.path": "\(path)", "error": "\(error)"])
                return
            }
            // No privilege for sysfs here (an unprivileged container): the guard cannot work.
            reenumerationWritable = false
            logger.warning(
                "cannot write sysfs authorization attributes: a device a client re-enumerates gets the host's drivers as the kernel decides",
                metadata: ["sysfs.path": "\(path)", "error": "\(error)"])
        }
    }

    /// A device that arrived on an armed bus is opened only once the guard has decided its
    /// interfaces (authorized, or kept from the host): its driver link comes before its
    /// interfaces, and a claim of an interface not yet authorized fails as if the device had
    /// gone. Rescans every 10 ms until then, for at most a second (on the host's own thread).
    func settleReenumeration(of entry: DeviceRoster.Entry) {
        let (id, bus, address) = (entry.info.id, entry.info.bus, entry.info.address)
        var tries = 0
        while reenumerationWritable, reenumeration.isUndecided(id: id, bus: bus, address: address), tries < 100 {
            tries += 1
            usleep(10_000)
            _ = devices()
        }
    }

    /// A rescan when the next watch runs out (its bus is then disarmed).
    private func scheduleReenumerationExpiry() {
        reenumerationTimer?.cancel()
        guard let next = reenumeration.nextExpiry else { return }
        reenumerationTimer = Task { [weak self] in
            try? await Task.sleep(until: next, clock: .continuous)
            guard !Task.isCancelled, let self else { return }
            await self.rescanForReenumeration()
        }
    }

    private func rescanForReenumeration() {
        _ = devices()
    }
}
