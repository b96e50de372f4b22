public import ArgumentParser

/// The `starling` root command: every subcommand is its own type and file (STYLE.md §8).
public struct StarlingCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "A multi-cluster service mesh: mTLS identities, discovery, balancing, splitting, linked clusters.",
        subcommands: [
            ClusterCommand.self,
            CertsCommand.self,
            ControllerCommand.self,
            InstallCommand.self,
            MulticlusterCommand.self,
            DemoAppCommand.self,
            DemoCommand.self,
            RunCommand.self,
            ProxyCommand.self,
            GatewayCommand.self,
            CheckCommand.self,
            ConfigCommand.self,
            ApplyCommand.self,
            GetCommand.self,
            DeleteCommand.self,
            LabelCommand.self,
            TokenCommand.self,
            AuthzCommand.self,
            VizCommand.self,
            DashboardCommand.self,
        ]
    )

    public init() {}
}

extension StarlingCommand {
    /// Entry point for the executable: parses the arguments and runs the async command.
    public static func start() async {
        await main(nil)
    }
}
