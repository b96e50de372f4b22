import ArgumentParser
import Foundation

/// `starling cluster`: local universal clusters, each a controller running in the background on its
/// own loopback range, with its state under `$STARLING_HOME/clusters/NAME`.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Create, list and delete local clusters (a controller in the background on its own loopback range).",
        discussion: """
            Local clusters live under $STARLING_HOME/clusters (default ~/.starling/clusters). Creating one \
            adds its context to $STARLING_HOME/config; `credentials` exports that context on its own, like \
            a kubeconfig.
            """,
        subcommands: [Create.self, Delete.self, List.self, Credentials.self]
    )

    /// The registry of the local clusters, rooted at `$STARLING_HOME` (read once, here).
    static func registry() -> ClusterRegistry {
        ClusterRegistry(home: StarlingPaths.home(environment: ProcessInfo.processInfo.environment))
    }
}
