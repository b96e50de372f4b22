public import Logging
public import StarlingCore
import StarlingObservability
public import StarlingTLS

/// What a sidecar proxy and a multicluster gateway both run around their listeners: the admin
/// endpoint (`/live`, `/ready`, `/metrics`, the tap API), the workload identity (a certificate
/// from the controller, renewed), and discovery (the destination API) with its picker.
///
/// Start-up order: admin first (so `/live` answers and `/ready` says why it is not ready), then
/// the identity; the listeners are served once a certificate is in hand, because an mTLS side
/// can neither accept nor dial without one.
public struct SidecarRuntime: Sendable {
    public var controller: ControllerAPI
    public var identity: MeshIdentity
    /// The admin endpoint's address (the workload's, or the gateway's probe address).
    public var adminHost: String
    public var adminPort: Int
    public var logger: Logger
    /// The Prometheus text `/metrics` answers.
    public var metrics: @Sendable () -> String

    public init(
        controller: ControllerAPI, identity: MeshIdentity, adminHost: String, adminPort: Int, logger: Logger,
        metrics: @escaping @Sendable () -> String
    ) {
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
    }

    /// The admin endpoint could not listen: said at once, not after the wait for a certificate.
    public struct AdminListenerError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs until cancelled (or until `serve` or a client fails): starts the admin endpoint and
    /// calls `adminStarted` with its port, gets the identity and follows discovery, then runs
    /// `serve` with what the listeners need.
    /// - Parameter readiness: why the sidecar is not ready, or nil when it is (`/ready`).
    public func run(
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
        let admin: AdminServer
        do {
            admin = try await AdminServer(
                host: adminHost, port: adminPort,
                routes: .init(readiness: readiness, metrics: metrics, streams: [TapEndpoint.path: { tapEndpoint.answer($0) }]))
        } catch {
            throw AdminListenerError(description: "the admin listener cannot use \(adminHost):\(adminPort): \(error)")
        }
        adminStarted(admin.port)
        defer { Task { await admin.close() } }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await identityClient.run() }
            group.addTask { try await discovery.run() }
            let tls = try await identityClient.waitUntilReady(timeout: .seconds(60))
            try await serve(Services(tls: tls, discovery: discovery, picker: picker, tap: tap))
        }
    }
}
