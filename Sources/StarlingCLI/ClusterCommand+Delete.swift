import ArgumentParser

extension ClusterCommand {
    /// `starling cluster delete NAME`.
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a local cluster's controller and remove its state and its context."
        )

        @Argument(help: "The cluster to delete.")
        var name: String

        func run() async throws {
            try await ClusterCommand.registry().delete(name: name) { line in
                print(line)
            }
            print("✓ cluster \(name) deleted")
        }
    }
}
