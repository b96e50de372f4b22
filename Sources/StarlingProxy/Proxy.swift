import Foundation
public import Logging
import StarlingCore
import StarlingObservability
import StarlingIdentity
import StarlingTLS
import Synchronization

/// The sidecar: gets its identity from the controller, follows the destination API, and runs
/// the inbound (mTLS) and outbound listeners and the admin endpoint until cancelled.
///
/// Start-up order: admin first (so `/live` answers and `/ready` says why it is not ready), then
/// the identity; the listeners open once a certificate is in hand, because the inbound side
/// cannot accept and the outbound side cannot dial without one.
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

    public func run() async throws {
        let c = configuration
        let controller = ControllerAPI(
            host: c.controllerHost, port: c.controllerPort, certificatePEM: c.controllerCertificatePEM, token: c.token,
            replicas: c.controllerReplicas)
        let identity = IdentityClient(configuration: .init(controller: controller, identity: c.identity), logger: logger)
        let discovery = DestinationClient(configuration: .init(controller: controller), logger: logger)
        let picker = MeshPicker(discovery: discovery, logger: logger)
        let tap = TapHub()
        let tapEndpoint = TapEndpoint(
            hub: tap, controllerCertificatePEM: c.controllerCertificatePEM, identity: c.identity.dnsName,
            address: c.adminPort == 0 || ["0.0.0.0", "::"].contains(c.listenHost)
                ? nil : NetworkAddress.joinHostPort(c.listenHost, c.adminPort),
            logger: logger)
        let admin: AdminServer
        do {
            admin = try await AdminServer(
                host: c.listenHost, port: c.adminPort,
                routes: .init(
                    readiness: { [weak self] in self?.ports == nil ? "waiting for the workload certificate" : nil },
                    metrics: metrics,
                    streams: [TapEndpoint.path: { tapEndpoint.answer($0) }]))
        } catch {
            // Said at once (waitUntilReady), not after the wait for a certificate runs out.
            let failure = ProxyStartError(message: "the admin listener cannot use \(c.listenHost):\(c.adminPort): \(error)")
            state.withLock { $0.failure = failure.message }
            throw failure
        }
        state.withLock { $0.adminPort = admin.port }
        defer { Task { await admin.close() } }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await identity.run() }
                group.addTask { try await discovery.run() }
                let tls = try await identity.waitUntilReady(timeout: .seconds(60))
                state.withLock { $0.tls = tls }
                var inboundConfiguration = InboundProxy.Configuration(
                    listenHost: c.listenHost, listenPort: c.inboundPort, appHost: c.appHost, appPorts: Set(c.appPorts),
                    defaultAppPort: c.appPorts.first ?? 80)
                inboundConfiguration.clusterName = c.clusterName
                let inbound = InboundProxy(configuration: inboundConfiguration, tls: tls, logger: logger, tap: tap)
                let outbound = OutboundProxy(
                    configuration: .init(
                        listenHost: c.listenHost, listenPort: c.outboundPort,
                        opaqueBindings: c.opaqueBindings, clusterName: c.clusterName),
                    runtime: .init(picker: picker, tls: tls, logger: logger, tap: tap))
                group.addTask { try await inbound.run { port in self.state.withLock { $0.inboundPort = port } } }
                group.addTask { try await outbound.run { port in self.state.withLock { $0.outboundPort = port } } }
            }
        } catch {
            state.withLock { $0.failure = "\(error)" }
            throw error
        }
    }
}

public struct ProxyStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
