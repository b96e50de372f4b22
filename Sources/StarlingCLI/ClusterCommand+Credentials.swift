import ArgumentParser
import Foundation

extension ClusterCommand {
    /// `starling cluster credentials NAME --export-file F`.
    struct Credentials: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a config file holding only this cluster's context, for --config or STARLING_CONFIG."
        )

        @Argument(help: "The cluster whose credentials to export.")
        var name: String

        @Option(help: ArgumentHelp("Where to write the config file (mode 0600).", valueName: "file"))
        var exportFile: String

        func validate() throws {
            guard !exportFile.isEmpty else { throw ValidationError("--export-file must not be empty") }
        }

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let path = StarlingPaths.expandTilde(exportFile, environment: environment)
            try ClusterCommand.registry().exportCredentials(name: name, to: path)
            print("✓ wrote the credentials of cluster \(name) to \(path)")
            print("  use them with `--config \(path)` or `export STARLING_CONFIG=\(path)`")
        }
    }
}
