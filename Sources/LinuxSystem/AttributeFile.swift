import Glibc
import SystemPackage

/// Kernel attribute files (sysfs, procfs): a value written whole, in one write(2), as the
/// kernel takes it (`authorized`, `interface_authorized_default`).
public enum AttributeFile {
    /// Writes `text` to attribute `path`: open(2) with O_WRONLY|O_CLOEXEC|O_NOFOLLOW (never
    /// through a link), one write(2) that must take it all, close(2).
    public static func write(_ path: String, _ text: String) throws(Errno) {
        let descriptor = try FileDescriptor(
            rawValue: valueOrErrno { Glibc.open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) })
        defer { try? descriptor.closeDescriptor() }
        let bytes = Array(text.utf8)
        let written = try valueOrErrno {
            bytes.withUnsafeBytes { Glibc.write(descriptor.rawValue, $0.baseAddress, $0.count) }
        }
        guard written == bytes.count else { throw Errno.ioError }
    }
}
