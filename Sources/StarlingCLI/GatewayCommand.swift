import ArgumentParser
import Logging
import StarlingCore
import StarlingGateway
import StarlingProxy
import UnixSignals

/// `starling gateway`: the multicluster gateway in a process of its own, on a host of its own
/// (systemd-friendly), for a cluster whose controllers do not host it
/// (`starling controller --gateway external`). It runs as the gateway identity, with a join token
/// for it: `starling token create -n starling-multicluster --service-account starling-gateway`.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the multicluster gateway: linked clusters reach this cluster's exported services through it.",
        discussion: """
            `starling multicluster install --gateway-address` names the address(es) linked clusters dial; the \
            controllers then leave the gateway to this process when started with `--gateway external`.
            """)

    @OptionGroup var connection: ControllerConnectionOptions

    @Option(help: "This cluster's name (logs, metrics, taps).")
    var clusterName: String

    @Option(help: "Trust domain of identities: the mesh's (its MeshConfig trustDomain); the gateway's own is starling-gateway.starling-multicluster.serviceaccount.identity.starling.TRUST_DOMAIN.")
    var trustDomain: String = "cluster.local"

    @Option(help: "Address the gateway and its probe listen on.")
    var listenAddress: String = "0.0.0.0"

    @Option(help: "The gateway's port (mTLS from linked clusters).")
    var port: Int = 4143

    @Option(help: "The probe port (/ready for linked clusters' probes, /metrics, the tap API).")
    var probePort: Int = 4191

    @Option(help: "Request metrics: on, or off.")
    var metrics: MetricsSetting = .on

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        if let problem = ResourceNames.dns1123LabelProblem(clusterName) {
            throw ValidationError("--cluster-name \(clusterName): \(problem)")
        }
        for (flag, value) in [("--port", port), ("--probe-port", probePort)] where !(0...65535).contains(value) {
            throw ValidationError("\(flag) \(value) is not a port (0–65535)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a log level") }
    }

    func run() async throws {
        Observability.bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let metrics = Observability.bootstrapProxyMetrics(self.metrics)
        let logger = Logger(label: "starling.gateway")
        let gateway = GatewaySidecar(
            controller: try connection.api(), trustDomain: trustDomain, listenHost: listenAddress, port: port,
            probePort: probePort, clusterName: clusterName, logger: logger, metrics: metrics)
        // SIGTERM and SIGINT shut it down gracefully: the probe says not ready, the gateway
        // drains, then the rest stops.
        try await gateway.run(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
