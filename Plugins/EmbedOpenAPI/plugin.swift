import PackagePlugin

/// Embeds the package's openapi.yaml (the API contract, kept at the top of the package) in
/// the target it is applied to, as `OpenAPIDocument.yaml`, so that the daemon serves the
/// very document it was built with, from a single binary.
@main
struct EmbedOpenAPI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "openapi.yaml")
        let output = context.pluginWorkDirectoryURL.appending(path: "OpenAPIDocument.swift")
        return [
            .buildCommand(
                displayName: "Embedding openapi.yaml in \(target.name)",
                executable: try context.tool(named: "embed-file").url,
                arguments: [input.path, output.path, "OpenAPIDocument"],
                inputFiles: [input], outputFiles: [output])
        ]
    }
}
