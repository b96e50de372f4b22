import ArgumentParser

/// The `starling-bench` root command. Each benchmark is its own subcommand and file; every one is
/// bounded in count and time, talks only to the controller named by a Starling context (loopback
/// for `starling cluster create`), and ends with machine-readable `result NAME VALUE UNIT` lines
/// after its human summary, which `bench/control-plane.sh` collects into its table.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling-bench",
        abstract: "Control-plane benchmarks: certificate signing, its rate limit under a flood, and destination fan-out.",
        subcommands: [IdentityBenchmark.self, DestinationBenchmark.self, FailoverBenchmark.self, CertifyFloodBenchmark.self]
    )
}

extension BenchCommand {
    /// Entry point: parses the arguments and runs the async command. (Called from an async
    /// function so that the async `main` is chosen, not `ParsableCommand`'s synchronous one.)
    static func start() async {
        await main(nil)
    }
}
