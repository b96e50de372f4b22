import Foundation
public import Logging
import StarlingCore
import StarlingObservability
import StarlingIdentity
import StarlingTLS
import Synchronization
public import ServiceLifecycle
public import UnixSignals

/// The sidecar: the inbound (mTLS) and outbound listeners on a ``SidecarRuntime`` (identity,
/// discovery, admin), until cancelled.
public final class Proxy: Sendable {
    public let configuration: ProxyConfiguration
    private let logger: Logger
    private let metrics: @Sendable () -> String
    private let state = Mutex(State())

    private struct State {
        var inboundPort: Int?
        var outboundPort: Int?
        var adminPort: Int?
        var failure: String?
        var tls: MeshTLS?
    }

    /// Which issuer signed the current workload certificate and which roots the proxy trusts,
    /// as fingerprints (heartbeats carry them for `check`).
    public struct CertificateReport: Sendable, Hashable {
        public var issuer: String
        public var trustAnchors: String
    }

    /// The current certificate's report; nil before the first certificate.
    public var certificateReport: CertificateReport? {
        guard let tls = state.withLock({ $0.tls }) else { return nil }
        let chain = tls.certificateChain
        return CertificateReport(issuer: chain.count > 1 ? chain[1].sha256Fingerprint : "", trustAnchors: tls.trust.fingerprint)
    }

    public init(configuration: ProxyConfiguration, logger: Logger, metrics: @escaping @Sendable () -> String = { "" }) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "workload"] = "\(configuration.identity)"
        self.logger = logger
        self.metrics = metrics
    }

    /// The bound ports once both listeners are up.
    public struct Ports: Sendable {
        public var inbound: Int
        public var outbound: Int
        public var admin: Int
    }

    public var ports: Ports? {
        state.withLock { s in
            guard let i = s.inboundPort, let o = s.outboundPort, let a = s.adminPort else { return nil }
            return Ports(inbound: i, outbound: o, admin: a)
        }
    }

    /// Waits until the listeners are up (identity obtained), or throws with the reason.
    public func waitUntilReady(timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if ports != nil { return }
            if let failure = state.withLock({ $0.failure }) { throw ProxyStartError(message: failure) }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProxyStartError(message: "the proxy was not ready within \(timeout) (no certificate from the controller?)")
    }

    /// Serves until cancelled, or until one of `gracefulShutdownSignals` shuts it down gracefully
    /// (``SidecarRuntime``), with the command's services `alongside` in its service group.
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [], alongside: [ServiceGroupConfiguration.ServiceConfiguration] = []
    ) async throws {
        let c = configuration
        var runtime = SidecarRuntime(
            controller: ControllerAPI(
                host: c.controllerHost, port: c.controllerPort, certificatePEM: c.controllerCertificatePEM, token: c.token,
                replicas: c.controllerReplicas),
            identity: c.identity, adminHost: c.listenHost, adminPort: c.adminPort, logger: logger, metrics: metrics,
            policyWorkload: c.workloadName ?? "",
            authorizer: InboundAuthorizer(
                initial: InboundPolicy(
                    workload: "\(c.identity.namespace)/\(c.workloadName ?? "")", cluster: c.clusterName ?? "",
                    defaultPolicy: c.defaultInboundPolicy ?? .allUnauthenticated,
                    defaultPolicySource: c.defaultInboundPolicy == nil ? .builtIn : .workload),
                logger: logger))
        runtime.policyLabels = c.workloadLabels
        runtime.policyPorts = c.workloadPorts
        let logger = self.logger
        do {
            try await runtime.run(
                gracefulShutdownSignals: gracefulShutdownSignals,
                alongside: alongside,
                readiness: { [weak self] in self?.ports == nil ? "waiting for the workload certificate" : nil },
                adminStarted: { port in self.state.withLock { $0.adminPort = port } }
            ) { services in
                self.state.withLock { $0.tls = services.tls }
                var inboundConfiguration = InboundProxy.Configuration(
                    listenHost: c.listenHost, listenPort: c.inboundPort, appHost: c.appHost, appPorts: Set(c.appPorts),
                    defaultAppPort: c.appPorts.first ?? 80)
                inboundConfiguration.clusterName = c.clusterName
                let inbound = InboundProxy(
                    configuration: inboundConfiguration, tls: services.tls, logger: logger, tap: services.tap,
                    authorizer: services.authorizer)
                let outbound = OutboundProxy(
                    configuration: .init(
                        listenHost: c.listenHost, listenPort: c.outboundPort,
                        opaqueBindings: c.opaqueBindings, clusterName: c.clusterName),
                    runtime: .init(picker: services.picker, tls: services.tls, logger: logger, tap: services.tap))
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { try await inbound.run { port in self.state.withLock { $0.inboundPort = port } } }
                    group.addTask { try await outbound.run { port in self.state.withLock { $0.outboundPort = port } } }
                }
            }
        } catch {
            // Said at once (waitUntilReady): a listener that cannot bind fails before the wait
            // for a certificate runs out.
            state.withLock { $0.failure = "\(error)" }
            throw error
        }
    }
}

public struct ProxyStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
