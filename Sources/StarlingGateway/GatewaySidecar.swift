package import Logging
import StarlingCore
import Synchronization
package import UnixSignals
package import StarlingProxy

/// The multicluster gateway as a whole — its listener (``GatewayProxy``) on a ``SidecarRuntime``
/// whose admin endpoint is the probe port that linked clusters check — as `starling gateway`
/// runs it in a process of its own, and as the controller hosts it for the local tooling.
///
/// It runs as the gateway identity of `trustDomain`. Shutting down gracefully, the probe says
/// "not ready" at once, so linked clusters fail over while the gateway drains its open
/// connections; cancelled, the probe closes at once.
package struct GatewaySidecar: Sendable {
    package var controller: ControllerAPI
    package var trustDomain: String
    package var listenHost: String
    package var port: Int
    package var probePort: Int
    /// This cluster's name (logs, metrics, taps).
    package var clusterName: String
    package var logger: Logger
    /// The Prometheus text the probe port's `/metrics` answers.
    package var metrics: @Sendable () -> String

    package init(
        controller: ControllerAPI, trustDomain: String, listenHost: String, port: Int, probePort: Int, clusterName: String,
        logger: Logger, metrics: @escaping @Sendable () -> String
    ) {
        self.controller = controller
        self.trustDomain = trustDomain
        self.listenHost = listenHost
        self.port = port
        self.probePort = probePort
        self.clusterName = clusterName
        self.logger = logger
        self.metrics = metrics
    }

    /// Serves until cancelled or shut down gracefully (by one of `gracefulShutdownSignals`);
    /// `started` gets the gateway's and the probe's bound ports once the gateway listens.
    package func run(
        gracefulShutdownSignals: [UnixSignal] = [],
        started: @escaping @Sendable (_ port: Int, _ probePort: Int) -> Void = { _, _ in }
    ) async throws {
        let identity = MeshIdentity.gateway(trustDomain: trustDomain)
        // The gateway registers no Workload: it follows the policy of its namespace for the
        // labels a gateway's Server selects (app: starling-gateway).
        let authorizer = InboundAuthorizer(
            initial: InboundPolicy(workload: "\(identity.namespace)/\(Self.policyName)", cluster: clusterName), logger: logger)
        var runtime = SidecarRuntime(
            controller: controller, identity: identity, adminHost: listenHost, adminPort: probePort, logger: logger,
            metrics: metrics, policyWorkload: Self.policyName, authorizer: authorizer)
        runtime.policyLabels = Self.labels
        runtime.policyPorts = [WorkloadPort(name: "gateway", port: port)]
        let ready = ReadyState()
        let (listenHost, port, clusterName, logger) = (self.listenHost, self.port, self.clusterName, self.logger)
        try await runtime.run(
            gracefulShutdownSignals: gracefulShutdownSignals,
            readiness: { ready.ready.load(ordering: .acquiring) ? nil : "gateway starting" },
            adminStarted: { port in ready.probePort.store(port, ordering: .releasing) }
        ) { services in
            let gateway = GatewayProxy(
                configuration: .init(listenHost: listenHost, listenPort: port), tls: services.tls,
                discovery: services.discovery, picker: services.picker, clusterName: clusterName, logger: logger,
                tap: services.tap, authorizer: services.authorizer)
            try await gateway.run { bound in
                ready.ready.store(true, ordering: .releasing)
                let probe = ready.probePort.load(ordering: .acquiring)
                logger.notice(
                    "gateway started",
                    metadata: [
                        "gateway": "\(NetworkAddress.joinHostPort(listenHost, bound))",
                        "probe": "\(NetworkAddress.joinHostPort(listenHost, probe))", "identity": "\(identity)",
                    ])
                started(bound, probe)
            }
        }
    }

    /// The name the gateway's policy is asked for (no Workload has it), and the labels its
    /// Servers select.
    package static let policyName = "starling-gateway"
    package static let labels = ["app": "starling-gateway"]

    private final class ReadyState: Sendable {
        let ready = Atomic(false)
        let probePort = Atomic(0)
    }
}
