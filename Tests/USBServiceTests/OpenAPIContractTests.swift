import Foundation
import Testing
import USBService

/// openapi.yaml names exactly the routes the daemon serves.
@Suite struct OpenAPIContractTests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)) ?? ""
    }()

    /// (METHOD, path) pairs under `paths:`: two-space keys starting with '/', four-space method keys.
    static func operations(in yaml: String) -> Set<String> {
        var result: Set<String> = []
        var inPaths = false
        var path: String?
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]
        for line in yaml.split(separator: "\n").map(String.init) {
            if !line.hasPrefix(" ") { inPaths = line == "paths:" }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = line.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) ?? ""
                if methods.contains(key) { result.insert("\(key.uppercased()) \(path)") }
            }
        }
        return result
    }

    @Test func everyRouteIsDocumentedAndNothingElse() {
        let served = Set(
            API.router(catalog: FakeCatalog(list: [])).table.map { "\($0.method) \($0.template)" })
        let documented = Self.operations(in: Self.document)
        #expect(!documented.isEmpty, "openapi.yaml was read")
        #expect(served == documented)
    }
}
