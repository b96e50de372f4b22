import ArgumentParser
import Foundation
import StarlingCore
import StarlingIdentity

/// `starling config`: the contexts of the config file, for clusters not created on this machine.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Edit the config file's contexts (clusters whose controllers run elsewhere).",
        subcommands: [AddCluster.self])

    /// `starling config add-cluster NAME --server A:8086[,B:8086,…] --ca-file F --token-file F`.
    struct AddCluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-cluster",
            abstract: "Add (or replace) the context of a cluster whose controllers run on other hosts.",
            discussion: """
                The CA file is the controllers' API certificate (PEM) and the token file an admin token, \
                as the cluster's operator hands them out (`starling cluster credentials` on the controller's \
                host writes both into a context). List every replica in --server: the CLI and the proxies \
                started with this context balance over them and move when one dies.
                """)

        @Argument(help: "The context's name (also the cluster's name unless --cluster-name says otherwise).")
        var name: String

        @Option(help: "The controllers' API addresses: HOST:PORT, or HOST:PORT,HOST:PORT,… for replicas.")
        var server: String

        @Option(help: "PEM file of the controllers' API certificate (pinned as the only trusted root).")
        var caFile: String

        @Option(help: "File holding the admin token.")
        var tokenFile: String

        @Option(help: "The controller's admin HTTP address HOST:PORT (/ready, /metrics), if reachable.")
        var adminServer: String?

        @Option(help: "The cluster's name, when it differs from the context's.")
        var clusterName: String?

        @Flag(help: "Make it the current context.")
        var use = false

        @Option(help: ArgumentHelp("The config file to write (default: $STARLING_CONFIG, else $STARLING_HOME/config).", valueName: "file"))
        var config: String?

        func validate() throws {
            if let problem = ResourceNames.dns1123LabelProblem(name) {
                throw ValidationError("context name \(name): \(problem)")
            }
            if let clusterName, let problem = ResourceNames.dns1123LabelProblem(clusterName) {
                throw ValidationError("--cluster-name \(clusterName): \(problem)")
            }
            let servers = server.split(separator: ",", omittingEmptySubsequences: false)
            for part in servers where HostPort(parsing: part.trimmingCharacters(in: .whitespaces)) == nil {
                throw ValidationError("--server: \"\(part)\" is not HOST:PORT (e.g. 10.0.0.1:8086)")
            }
            if let adminServer, HostPort(parsing: adminServer) == nil {
                throw ValidationError("--admin-server \"\(adminServer)\" is not HOST:PORT")
            }
        }

        func run() async throws {
            let pem = try InputFile.read(caFile)
            do {
                _ = try PEMFile.certificate(pem: pem, source: caFile)
            } catch {
                throw CLIError(
                    "\(error)", hint: "it is the controllers' API certificate (api.crt in the controller's data directory)")
            }
            let token = try InputFile.read(tokenFile).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw CLIError("\(tokenFile) is empty; it must hold the admin token") }
            let servers = server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ",")
            let context = ContextFile.Context(
                name: name, clusterName: clusterName ?? name, server: servers, adminServer: adminServer,
                certificateAuthorityData: Data(pem.utf8).base64EncodedString(), token: token)
            let path = StarlingPaths.configPath(flag: config, environment: ProcessInfo.processInfo.environment)
            var file = try loadContextFileIfPresent(path: path) ?? ContextFile()
            let replaced = file.context(named: name) != nil
            file.upsert(context)
            if use || file.currentContext == nil { file.currentContext = name }
            // Checks the context the way every command will read it.
            _ = try ContextOptions.resolve(context, path: path)
            try saveContextFile(file, path: path)
            print("✓ context \(name) \(replaced ? "replaced" : "added") in \(path) (server \(servers))"
                + (file.currentContext == name ? ", current" : ""))
        }
    }
}
