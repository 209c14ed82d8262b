import Foundation
import PackagePlugin

/// Embeds files in the target it is applied to, so that the daemon is one binary that serves
/// what it was built with:
/// - in `USBService`, the package's openapi.yaml (the API contract, kept at the top of the
///   package) as `OpenAPIDocument.files["openapi.yaml"]`;
/// - in `BenchPage`, every file of its `files` folder (the page) as `PageFiles.files[name]`.
@main
struct Embed: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let (inputs, name): ([URL], String)
        switch target.name {
        case "USBService":
            (inputs, name) = ([context.package.directoryURL.appending(path: "openapi.yaml")], "OpenAPIDocument")
        case "BenchPage":
            let folder = context.package.directoryURL.appending(path: "Sources/BenchPage/files")
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }
            (inputs, name) = (names.sorted().map { folder.appending(path: $0) }, "PageFiles")
        default:
            throw EmbedError(message: "the Embed plugin knows no files for target \(target.name)")
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(name).swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.map(\.lastPathComponent).joined(separator: ", ")) in \(target.name)",
                executable: try context.tool(named: "embed-file").url,
                arguments: [output.path, name] + inputs.map(\.path),
                inputFiles: inputs, outputFiles: [output])
        ]
    }
}

struct EmbedError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
