import Foundation
import LinuxSystem
import Logging
import SystemPackage
import USB

/// Keeps Node Feature Discovery's local feature file for this node current (--feature-file):
/// written at start, after every arrival and removal the change log records, and again before
/// its expiry; removed when the daemon stops. NFD's worker reads the folder
/// (`/etc/kubernetes/node-feature-discovery/features.d/`) and labels the node.
public struct NodeFeatureFile: Sendable {
    public let path: String
    public let node: String?
    public let serials: Bool
    /// How long NFD keeps the labels of a file nobody rewrites (a daemon killed without its
    /// clean-up); the file is rewritten when half of it has passed.
    public let lifetime: Duration
    let logger: Logger

    public init(path: String, node: String?, serials: Bool, lifetime: Duration = .seconds(600), logger: Logger) {
        self.path = path
        self.node = node
        self.serials = serials
        self.lifetime = lifetime
        self.logger = logger
    }

    /// Follows `changes` until the task is cancelled, then removes the file.
    public func run(changes: ChangeLog) async {
        var written: NodeFeatures?
        var renewal = ContinuousClock.now
        while !Task.isCancelled {
            let (latest, devices) = changes.snapshot()
            let features = NodeFeatures(devices: devices, serials: serials)
            if features != written || ContinuousClock.now >= renewal {
                if write(features) {
                    written = features
                    renewal = ContinuousClock.now + lifetime / 2
                } else {
                    // Tried again at the next change, or in a while.
                    renewal = ContinuousClock.now + .seconds(10)
                }
            }
            await changes.waitForChange(after: latest, until: renewal)
        }
        do throws(Errno) {
            try FileReplacement.remove(path)
            logger.info("feature file removed", metadata: ["nfd.file": "\(path)"])
        } catch {
            logger.warning("cannot remove the feature file", metadata: ["nfd.file": "\(path)", "error": "\(error)"])
        }
    }

    /// Whether the file now holds `features`.
    private func write(_ features: NodeFeatures) -> Bool {
        let expiry = Timestamp.iso8601(Date().timeIntervalSince1970 + Double(lifetime.components.seconds))
        do throws(Errno) {
            try FileReplacement.replace(path, with: features.text(node: node, expiry: expiry))
            logger.log(
                level: features.serialsLeftOut ? .warning : .info,
                features.serialsLeftOut ? "feature file written without serial labels (too many for NFD's 64 KiB)" : "feature file written",
                metadata: ["nfd.file": "\(path)", "nfd.labels": "\(features.labels.count)"])
            return true
        } catch {
            logger.warning("cannot write the feature file", metadata: ["nfd.file": "\(path)", "error": "\(error)"])
            return false
        }
    }
}
