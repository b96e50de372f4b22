import ArgumentParser

extension ClusterCommand {
    /// `starling cluster create NAME [--address-range 127.N.0.0/16]`.
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a local cluster: start its controller in the background and add its context.",
            discussion: """
                The controller listens on 127.N.0.1:8086 (API) and 127.N.0.1:9990 (admin), where \
                127.N.0.0/16 is the lowest loopback range no other local cluster uses, or --address-range.
                """
        )

        @Argument(help: "The cluster's name, a DNS-1123 label such as workload1.")
        var name: String

        @Option(
            help: ArgumentHelp(
                "The loopback /16 the cluster owns, e.g. 127.3.0.0/16 (default: the lowest free one).",
                valueName: "cidr"
            )
        )
        var addressRange: String?

        @Option(
            help: ArgumentHelp(
                "The controller's store: sqlite (default, a file in the cluster's directory) or postgres://USER[:PASSWORD]@HOST:PORT/DB.",
                valueName: "store"))
        var store: String = "sqlite"

        @Option(help: ArgumentHelp(
            "Controller replicas on one PostgreSQL store, on 127.N.0.1, 127.N.0.2, … (1–9; more than one needs --store postgres://…).",
            valueName: "n"))
        var replicas: Int = 1

        func validate() throws {
            do {
                try ClusterRegistry.validate(name: name)
                if let addressRange { _ = try ClusterAddressRange(parsing: addressRange) }
                let postgres = try ControllerCommand.postgresURL(store) != nil
                guard (1...9).contains(replicas) else {
                    throw CLIError("--replicas \(replicas): expected 1 to 9")
                }
                guard replicas == 1 || postgres else {
                    throw CLIError(
                        "--replicas \(replicas) needs a shared store: replicas cannot share a SQLite file",
                        hint: "add --store postgres://USER@HOST:PORT/DB")
                }
            } catch {
                throw ValidationError("\(error)")
            }
        }

        func run() async throws {
            let range = try addressRange.map { try ClusterAddressRange(parsing: $0) }
            let record = try await ClusterCommand.registry().create(
                name: name, requestedRange: range, store: try ControllerCommand.postgresURL(store) == nil ? nil : store,
                replicas: replicas
            ) { line in
                print(line)
            }
            let apis = record.replicaList.map(\.apiAddress).joined(separator: ", ")
            print("✓ cluster \(record.name) created (API \(apis))")
        }
    }
}
