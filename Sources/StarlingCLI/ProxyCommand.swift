import ArgumentParser
import Foundation
import Logging
import StarlingCore
import StarlingProxy
import UnixSignals

/// `starling proxy`: the sidecar in the foreground (systemd-friendly). `starling run` starts the
/// same proxy in-process; this command is for operators wiring it up themselves.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Run the sidecar proxy: inbound mTLS, outbound routing, admin.")

    @OptionGroup var connection: ControllerConnectionOptions

    @Option(name: [.short, .customLong("namespace")], help: "The workload's namespace (must match the token).")
    var namespace: String

    @Option(help: "The workload's service account (must match the token).")
    var serviceAccount: String = "default"

    @Option(help: "Trust domain of identities.")
    var trustDomain: String = "cluster.local"

    @Option(help: "Address the proxy listens on (the workload's address).")
    var listenAddress: String = "127.0.0.1"

    @Option var inboundPort: Int = 4143
    @Option var outboundPort: Int = 4140
    @Option var adminPort: Int = 4191

    @Option(help: "Host of the application (inbound traffic goes there).")
    var appHost: String = "127.0.0.1"

    @Option(name: .customLong("app-port"), help: "An application port (repeatable; the first is the default).")
    var appPorts: [Int] = []

    @Option(name: .customLong("outbound-tcp"), help: "Opaque TCP binding SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT (repeatable).")
    var outboundTCP: [String] = []

    @Option(help: "This cluster's name, sent with mesh requests so that linked clusters' gateways know the caller's cluster.")
    var clusterName: String?

    @Option(help: "Request metrics: on, or off (to measure what they cost; bench/proxy-pair.sh).")
    var metrics: MetricsSetting = .on

    @Option(help: "The registered workload this proxy fronts: its inbound policy is enforced (default: the namespace's default policy only).")
    var workload: String?

    @Option(help: "Default inbound policy until the controller's arrives: all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit.")
    var defaultInboundPolicy: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        for binding in outboundTCP { _ = try OpaqueBindingFlag.parse(binding) }
        guard !appPorts.isEmpty else { throw ValidationError("give at least one --app-port") }
        if let clusterName, let problem = ResourceNames.dns1123LabelProblem(clusterName) {
            throw ValidationError("--cluster-name \(clusterName): \(problem)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a log level") }
        if let defaultInboundPolicy, AccessPolicy.parse(defaultInboundPolicy) == nil {
            throw ValidationError("--default-inbound-policy \(defaultInboundPolicy): expected one of \(AccessPolicy.acceptedList)")
        }
        if let workload, let problem = ResourceNames.dns1123SubdomainProblem(workload) {
            throw ValidationError("--workload \(workload): \(problem)")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        Observability.bootstrapLogging(level: level)
        let metrics = Observability.bootstrapProxyMetrics(self.metrics)
        let controller = try connection.api()
        let logger = Logger(label: "starling.proxy")
        var configuration = ProxyConfiguration(
                controllerHost: controller.host, controllerPort: controller.port,
                controllerCertificatePEM: controller.certificatePEM, token: controller.token,
                identity: MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain),
                listenHost: listenAddress, inboundPort: inboundPort, outboundPort: outboundPort, adminPort: adminPort,
                appHost: appHost, appPorts: appPorts, opaqueBindings: try outboundTCP.map(OpaqueBindingFlag.parse),
                clusterName: clusterName)
        configuration.controllerReplicas = controller.replicas
        configuration.workloadName = workload
        configuration.defaultInboundPolicy = defaultInboundPolicy.flatMap(AccessPolicy.parse)
        let proxy = Proxy(configuration: configuration, logger: logger, metrics: metrics)
        try await withThrowingTaskGroup { group in
            group.addTask {
                guard (try? await proxy.waitUntilReady(timeout: .seconds(300))) != nil else { return }
                StartupPages.release(logger: logger)
            }
            // SIGTERM and SIGINT shut it down gracefully (SidecarRuntime): /ready says so, the
            // listeners drain, then the rest stops. Its error, if any, is the command's.
            try await proxy.run(gracefulShutdownSignals: [.sigterm, .sigint])
            group.cancelAll()
        }
    }
}
