public import Logging
public import ServiceLifecycle
public import StarlingCore
import StarlingObservability
public import StarlingTLS
import Synchronization
public import UnixSignals

/// What a sidecar proxy and a multicluster gateway both run around their listeners: the admin
/// endpoint (`/live`, `/ready`, `/metrics`, the tap API), the workload identity (a certificate
/// from the controller, renewed), and discovery (the destination API) with its picker.
///
/// Each is a `Service` of one `ServiceGroup`, in this order: admin, identity, discovery, listeners.
/// - **Start-up:** the admin endpoint listens first (so `/live` answers and `/ready` says why it is
///   not ready); the listeners are served once a certificate is in hand, because an mTLS side can
///   neither accept nor dial without one.
/// - **Graceful shutdown** (a signal given to ``run(gracefulShutdownSignals:readiness:adminStarted:serve:)``)
///   goes the other way, one at a time: `/ready` says "shutting down" at once, the listeners drain
///   their connections (their own grace period) with the identity and discovery still running,
///   then discovery, identity and the admin endpoint stop. Cancelling the task stops everything at
///   once (the listeners still drain).
public struct SidecarRuntime: Sendable {
    public var controller: ControllerAPI
    public var identity: MeshIdentity
    /// The admin endpoint's address (the workload's, or the gateway's probe address).
    public var adminHost: String
    public var adminPort: Int
    public var logger: Logger
    /// The Prometheus text `/metrics` answers.
    public var metrics: @Sendable () -> String
    /// The registered workload whose inbound policy to follow (nil: no Policy stream; the
    /// authorizer keeps its initial policy). A name of "" follows the namespace's default.
    public var policyWorkload: String?
    /// The inbound policy in force; followed on the Policy stream when `policyWorkload` is set.
    public var authorizer: InboundAuthorizer
    /// The labels and ports that pick Servers while no Workload named `policyWorkload` exists:
    /// what the workload registers with, or a gateway's, which registers none.
    public var policyLabels: [String: String] = [:]
    public var policyPorts: [WorkloadPort] = []

    public init(
        controller: ControllerAPI, identity: MeshIdentity, adminHost: String, adminPort: Int, logger: Logger,
        metrics: @escaping @Sendable () -> String, policyWorkload: String? = nil, authorizer: InboundAuthorizer? = nil
    ) {
        self.policyWorkload = policyWorkload
        self.authorizer = authorizer ?? .allowAll()
        self.controller = controller
        self.identity = identity
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.logger = logger
        self.metrics = metrics
    }

    /// What the listeners are built with, once the identity is in hand.
    public struct Services: Sendable {
        public var tls: MeshTLS
        public var discovery: DestinationClient
        public var picker: MeshPicker
        /// Where answered requests are shown to open taps (served on the admin endpoint).
        public var tap: TapHub
        /// The inbound policy in force.
        public var authorizer: InboundAuthorizer
    }

    /// How often the wait for the first inbound policy is logged.
    static let firstPolicyWait: Duration = .seconds(5)

    /// Runs until cancelled or shut down (or until `serve` or a client fails): starts the admin
    /// endpoint and calls `adminStarted` with its port, gets the identity and follows discovery,
    /// then runs `serve` with what the listeners need.
    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that shut the sidecar down gracefully (a command's
    ///     SIGTERM and SIGINT; none when it runs inside another process's group).
    ///   - readiness: why the sidecar is not ready, or nil when it is (`/ready`).
    ///   - alongside: the command's own services (a workload's registration), run in the same
    ///     group after the listeners: at a graceful shutdown they stop first (a service group
    ///     stops its services last to first), and the listeners drain after them.
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [],
        alongside: [ServiceGroupConfiguration.ServiceConfiguration] = [],
        readiness: @escaping @Sendable () -> String?,
        adminStarted: @Sendable (Int) -> Void = { _ in },
        serve: @escaping @Sendable (Services) async throws -> Void
    ) async throws {
        let identityClient = IdentityClient(configuration: .init(controller: controller, identity: identity), logger: logger)
        let discovery = DestinationClient(configuration: .init(controller: controller), logger: logger)
        let picker = MeshPicker(discovery: discovery, logger: logger)
        let tap = TapHub()
        // The tap API checks that a token names this endpoint; an address that says nothing
        // (every interface, or a port not yet bound) is not checked.
        let tapEndpoint = TapEndpoint(
            hub: tap, controllerCertificatePEM: controller.certificatePEM, identity: identity.dnsName,
            address: adminPort == 0 || NetworkAddress.isWildcard(adminHost)
                ? nil : NetworkAddress.joinHostPort(adminHost, adminPort),
            logger: logger)
        let stopping = Flag()
        let admin: AdminServer
        do {
            admin = try await AdminServer(
                host: adminHost, port: adminPort,
                routes: .init(
                    readiness: { stopping.isSet ? "shutting down" : readiness() }, metrics: metrics,
                    streams: [TapEndpoint.path: { tapEndpoint.answer($0) }]))
        } catch {
            // Said at once, not after the wait for a certificate.
            throw ListenError("admin", host: adminHost, port: adminPort, cause: error)
        }
        adminStarted(admin.port)
        let logger = self.logger
        let listeners = StoppedOnShutdown(
            onShutdown: {
                stopping.set()
                logger.info("shutting down: the listeners drain, then discovery, identity and admin stop")
            }
        ) {
            let tls = try await identityClient.waitUntilReady(timeout: .seconds(60))
            try await waitForFirstPolicy()
            try await serve(Services(tls: tls, discovery: discovery, picker: picker, tap: tap, authorizer: authorizer))
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: AdminServerService(server: admin), serviceName: "admin"),
            .init(service: StoppedOnShutdown { try await identityClient.run() }, serviceName: "identity"),
            .init(service: StoppedOnShutdown { try await discovery.run() }, serviceName: "discovery"),
        ]
        if let policyWorkload {
            let policy = PolicyClient(
                controller: controller, namespace: identity.namespace, workload: policyWorkload, labels: policyLabels,
                ports: policyPorts, authorizer: authorizer, logger: logger)
            services.append(.init(service: StoppedOnShutdown { try await policy.run() }, serviceName: "policy"))
        }
        services.append(.init(service: listeners, serviceName: "listeners"))
        services.append(contentsOf: alongside)
        var configuration = ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: gracefulShutdownSignals, logger: logger)
        // A backstop past the listeners' own drain grace: whatever still runs then is cancelled.
        configuration.maximumGracefulShutdownDuration = .seconds(60)
        try await ServiceGroup(configuration: configuration).run()
    }
}

extension SidecarRuntime {
    /// Waits for the controller's inbound policy before the listeners serve: a workload never
    /// serves under a policy it was not given (fails closed). Says so every `firstPolicyWait`.
    private func waitForFirstPolicy() async throws {
        guard policyWorkload != nil else { return }
        var next = ContinuousClock.now + Self.firstPolicyWait
        while !authorizer.hasReceivedPolicy {
            try await Task.sleep(for: .milliseconds(20))
            if ContinuousClock.now >= next {
                logger.warning("no inbound policy from the controller yet; the listeners wait for it")
                next = ContinuousClock.now + Self.firstPolicyWait
            }
        }
    }
}

/// A flag set once, read from any thread.
private final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
