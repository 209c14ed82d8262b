import Glibc
import SystemPackage

/// A small file that readers must see whole or not at all (a feature file another program
/// reads while it is rewritten): written beside its place under a hidden name, then renamed
/// over it, which is atomic within a filesystem.
public enum FileReplacement {
    /// Writes `contents` to `path` through `.NAME.tmp` in the same folder (open(2) with
    /// O_CREAT|O_TRUNC|O_CLOEXEC, mode 0644; write(2) until all is written; fsync(2); close(2);
    /// rename(2)). The temporary file is unlinked when a step fails.
    public static func replace(_ path: String, with contents: String) throws(Errno) {
        let temporary = temporaryPath(for: path)
        let descriptor = try FileDescriptor(
            rawValue: valueOrErrno { Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) })
        do throws(Errno) {
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

    /// unlink(2); a file already gone is no failure.
    public static func remove(_ path: String) throws(Errno) {
        do throws(Errno) {
            try nothingOrErrno { unlink(path) }
        } catch where error == .noSuchFileOrDirectory {}
    }

    /// `.NAME.tmp` in the folder of `path` (readers such as NFD skip hidden files).
    public static func temporaryPath(for path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return ".\(path).tmp" }
        return String(path[...slash]) + "." + path[path.index(after: slash)...] + ".tmp"
    }
}
