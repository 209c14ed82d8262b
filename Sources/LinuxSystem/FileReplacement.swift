import CLinux
import Glibc
import SystemPackage

/// A small file that readers must see whole or not at all (a feature file another program
/// reads while it is rewritten): written beside its place under a hidden name, then renamed
/// over it, which is atomic within a filesystem.
///
/// The folder may be writable by others (an operator's `--feature-file /tmp/…`), so nothing
/// planted there is followed or reused: the temporary file is created exclusively under a name
/// nobody can guess (a link planted under a fixed name would have sent root's write and
/// truncation to whatever it pointed at), and rename(2) replaces a link planted at the place
/// itself instead of writing through it.
public enum FileReplacement {
    /// Writes `contents` to `path` through `.NAME.XXXXXX` in the same folder (mkostemp(3) with
    /// O_CLOEXEC: O_CREAT|O_EXCL, never an existing file or link; fchmod(2) to 0644; write(2)
    /// until all is written; fsync(2); close(2); rename(2)). The temporary file is unlinked
    /// when a step fails.
    public static func replace(_ path: String, with contents: String) throws(Errno) {
        var template = Array(temporaryTemplate(for: path).utf8CString)
        let descriptor = try FileDescriptor(
            rawValue: valueOrErrno { template.withUnsafeMutableBufferPointer { usbhttpd_mkostemp($0.baseAddress!, O_CLOEXEC) } })
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        do throws(Errno) {
            try nothingOrErrno { fchmod(descriptor.rawValue, 0o644) }
            let bytes = Array(contents.utf8)
            var written = 0
            while written < bytes.count {
                written += try valueOrErrno {
                    bytes.withUnsafeBytes { Glibc.write(descriptor.rawValue, $0.baseAddress! + written, $0.count - written) }
                }
            }
            try nothingOrErrno { fsync(descriptor.rawValue) }
        } catch {
            // The first failure is the one to report; the clean-up's own are of no more use.
            try? descriptor.closeDescriptor()
            _ = unlink(temporary)
            throw error
        }
        do throws(Errno) {
            try descriptor.closeDescriptor()
            try nothingOrErrno { rename(temporary, path) }
        } catch {
            _ = unlink(temporary)
            throw error
        }
    }

    /// unlink(2) (a link is removed, never what it points at); a file already gone is no failure.
    public static func remove(_ path: String) throws(Errno) {
        do throws(Errno) {
            try nothingOrErrno { unlink(path) }
        } catch where error == .noSuchFileOrDirectory {}
    }

    /// `.NAME.XXXXXX` in the folder of `path`, mkostemp(3)'s template (readers such as NFD
    /// skip hidden files).
    public static func temporaryTemplate(for path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return ".\(path).XXXXXX" }
        return String(path[...slash]) + "." + path[path.index(after: slash)...] + ".XXXXXX"
    }
}
