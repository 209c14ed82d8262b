/// A console as sysfs shows it: the USB interface of a serial function and its tty.
public struct ConsoleInfo: Sendable, Hashable, Codable {
    /// The device's id (its port path).
    public var device: String
    /// The USB interface the tty belongs to.
    public var interface: UInt8
    /// The tty's name under /dev (ttyACM0, ttyUSB0): found in sysfs, never given by a client.
    public var tty: String
    /// The kernel driver that made it (cdc_acm, ftdi_sio, cp210x, ch341, pl2303, …).
    public var driver: String

    public init(device: String, interface: UInt8, tty: String, driver: String) {
        self.device = device
        self.interface = interface
        self.tty = tty
        self.driver = driver
    }
}
