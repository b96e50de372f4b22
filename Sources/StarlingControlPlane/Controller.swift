import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Logging
import StarlingObservability
import NIOCore
import StarlingAPI
public import StarlingCore
import StarlingMulticluster
import StarlingStore
import Synchronization

/// The control plane of one cluster: the store, the gRPC API (resources, identity, destination,
/// mesh), the workload lease reaper and the admin endpoint, run until cancelled or signalled.
public struct Controller: Sendable {
    public var configuration: ControllerConfiguration
    public var logger: Logger
    /// Prometheus text for `/metrics`; the starting command owns the metrics backend.
    public var metrics: @Sendable () -> String

    public init(configuration: ControllerConfiguration, logger: Logger, metrics: @escaping @Sendable () -> String = { "" }) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    /// Addresses the controller ended up listening on (useful with port 0).
    public struct Listening: Sendable {
        public var apiPort: Int
        public var adminPort: Int
        /// The other live replicas' API addresses, as the shared store last listed them (none
        /// for a controller on SQLite).
        public var otherReplicas: @Sendable () -> [HostPort]
    }

    /// Runs until the task is cancelled. `onListening` is called once both servers are bound.
    public func run(onListening: @Sendable (Listening) -> Void = { _ in }) async throws {
        let c = configuration
        let credentials = try ControllerCredentials.loadOrCreate(
            directory: c.dataDirectory, apiHost: c.apiHost, otherNames: c.apiCertificateNames)
        let opened = try await StoreOpening.open(c, logger: logger)
        let store = opened.store
        let auth = Authenticator(adminToken: credentials.adminToken, tokenKey: credentials.tokenKey)
        let identity = MeshIdentityState(store: store, logger: logger)
        let multicluster = MulticlusterRegistry()
        let index = DestinationIndex(store: store, multicluster: multicluster, logger: logger)
        let shared = store as? any ReplicatedStore
        // Every replica probes the linked gateways; the service mirror is a duty when replicas share the store.
        let links = MulticlusterController(
            store: store, registry: multicluster, logger: logger, mode: shared == nil ? .probesAndMirrors : .probesOnly)
        let leases = WorkloadLeases(store: store, lease: c.workloadLease, logger: logger)
        var duties = [Duty(name: Duty.workloadLeaseExpiry) { fence in try await leases.expire(fence: fence) }]
        if let shared {
            duties.append(
                Duty(name: Duty.serviceMirror) { fence in
                    let writes: any ResourceStore = fence.map { FencedStore(base: shared, fence: $0) } ?? shared
                    try await MulticlusterController(store: writes, registry: multicluster, logger: logger, mode: .mirrorsOnly).run()
                })
            // The shared history would only grow: one replica trims it twice a minute (deleting
            // old history twice is harmless, so it needs no fence).
            duties.append(
                Duty(name: Duty.historyCompaction) { _ in
                    while true {
                        let dropped = try await shared.compact()
                        if dropped > 0 { logger.debug("history compacted", metadata: ["dropped": "\(dropped)"]) }
                        try await Task.sleep(for: .seconds(30))
                    }
                })
        }
        let allDuties = duties
        let clock = ReplicaClock(measurementRequired: store is any ReplicatedStore, logger: logger)
        // The admin address Prometheus scrapes the controller at (known once bound), and the
        // other replicas' as the shared store last listed them.
        let adminAddress = Mutex(NetworkAddress.joinHostPort(c.adminHost, c.adminPort))
        let otherReplicaAdmins = Mutex<[String]>([])
        // The other live replicas' API addresses: a hosted gateway asks them for its certificate
        // too (this replica may refuse to sign: its clock off).
        let otherReplicaAPIs = Mutex<[HostPort]>([])
        let ownAPI = NetworkAddress.joinHostPort(c.apiHost, c.apiPort)
        // What proxies report in heartbeats and what gateways were issued, for `check` (in the
        // shared store when there is one: each replica's heartbeat publishes its issues).
        let reports = CertificateReports(shared: store as? any ReplicatedStore)
        let scheduler = DutyScheduler(
            store: store,
            holder: "\(ownAPI) on \(ProcessInfo.processInfo.hostName) pid \(getpid())",
            logger: logger, clock: clock, adminAddress: { adminAddress.withLock { $0 } },
            replicasSeen: { seen in
                let own = adminAddress.withLock { $0 }
                let others = seen.filter { $0.secondsAgo < 30 && !$0.adminAddress.isEmpty && $0.adminAddress != own }
                otherReplicaAdmins.withLock { $0 = Set(others.map(\.adminAddress)).sorted() }
                let apis = seen.filter { $0.secondsAgo < 30 }.compactMap(\.apiAddress).filter { $0.description != ownAPI }
                otherReplicaAPIs.withLock { $0 = Array(Set(apis)).sorted { $0.description < $1.description } }
            },
            afterHeartbeat: { await reports.publish(logger: logger) })

        let services: [any RegistrableRPCService] = [
            ResourcesService(store: store, auth: auth, logger: logger),
            IdentityService(
                identity: identity, auth: auth, logger: logger, clock: clock, rateLimit: configuration.certifyRateLimit, reports: reports),
            DestinationService(index: index, auth: auth, logger: logger),
            PolicyService(index: index, auth: auth, logger: logger),
            MeshService(
                store: store, auth: auth, tokenKey: credentials.tokenKey, tapKey: credentials.apiKey, identity: identity,
                index: index,
                leases: leases, multicluster: multicluster, configuration: c, logger: logger, clock: clock, reports: reports),
        ]
        let transport = HTTP2ServerTransport.Posix(
            // An IPv6 API address ([::1]:8086, [::]:8086) binds as one; anything else as IPv4.
            address: NetworkAddress.isIPv6(c.apiHost) ? .ipv6(host: c.apiHost, port: c.apiPort) : .ipv4(host: c.apiHost, port: c.apiPort),
            transportSecurity: .tls(
                certificateChain: [.bytes(Array(credentials.apiCertificatePEM.utf8), format: .pem)],
                privateKey: .bytes(Array(credentials.apiKeyPEM.utf8), format: .pem)),
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = 64 * 1024 * 1024
                // Proxies hold one Destination stream per service they call.
                $0.http2.maxConcurrentStreams = 4096
            })
        let server = GRPCServer(transport: transport, services: services, interceptors: [MetricsInterceptor()])

        let cluster = c.clusterName
        let admin = try await AdminServer(
            host: c.adminHost, port: c.adminPort,
            routes: .init(
                readiness: { index.isReady ? nil : "destination index loading" }, metrics: metrics,
                documents: [
                    PrometheusTargets.path: {
                        let snapshot = index.snapshot
                        let groups = PrometheusTargets.groups(
                            snapshot, cluster: cluster, controllerAdmin: adminAddress.withLock { $0 },
                            otherReplicas: otherReplicaAdmins.withLock { $0 },
                            // External gateways are where the Service says (the API's host serves none).
                            gateways: c.gatewayHosted ? [] : ProxyAdminEndpoints.gateways(snapshot, defaultHost: nil))
                        return ("application/json", PrometheusTargets.document(groups))
                    }
                ]))
        adminAddress.withLock { $0 = NetworkAddress.joinHostPort(c.adminHost, admin.port) }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await Self.serveUntilCancelled(server) }
                group.addTask { try await identity.run() }
                group.addTask {
                    await DutyScheduler.keepRunning("destination-index", logger: logger) { try await index.run() }
                }
                group.addTask {
                    await DutyScheduler.keepRunning("link-probes", logger: logger) { try await links.run() }
                }
                group.addTask { await scheduler.run(allDuties) }
                let bound: GRPCNIOTransportCore.SocketAddress
                do {
                    bound = try await transport.listeningAddress
                } catch {
                    // The server task's own error (bind: Address already in use) may come first;
                    // this one only knows the server stopped.
                    throw ControllerError(
                        "the API could not listen on \(NetworkAddress.joinHostPort(c.apiHost, c.apiPort)) (in use by another process, or not an address of this host?): \(error)")
                }
                guard let apiPort = bound.ipv4?.port ?? bound.ipv6?.port else {
                    throw ControllerError("the API bound \(bound), not an IP address")
                }
                logger.info("controller started", metadata: [
                    "cluster": "\(c.clusterName)", "api": "\(NetworkAddress.joinHostPort(c.apiHost, apiPort))",
                    "admin": "\(c.adminHost):\(admin.port)", "data": "\(c.dataDirectory)", "store": "\(opened.description)", "duties": "\(allDuties.map(\.name).joined(separator: ","))",
                ])
                onListening(Listening(apiPort: apiPort, adminPort: admin.port, otherReplicas: { otherReplicaAPIs.withLock { $0 } }))
            }
        } catch where Task.isCancelled {
            // Asked to stop: the gRPC server may report the cancellation as a transport error.
        } catch {
            await admin.close()
            opened.close()
            throw error
        }
        await admin.close()
        opened.close()
        logger.info("controller stopped", metadata: ["cluster": "\(c.clusterName)"])
    }
}

extension Controller {
    /// Serves until the calling task is cancelled, then stops gracefully: the listener closes
    /// first and open RPCs get a moment to finish before they are cancelled. Cancelling
    /// `serve()` directly can catch a just-accepted connection before it is served, which trips
    /// an assertion in NIO's async writer (apple/swift-nio#3481).
    static func serveUntilCancelled<T: ServerTransport>(_ server: GRPCServer<T>, grace: Duration = .seconds(1)) async throws {
        let serving = Task { try await server.serve() }
        try await withTaskCancellationHandler {
            try await serving.value
        } onCancel: {
            server.beginGracefulShutdown()
            Task {
                try? await Task.sleep(for: grace)
                serving.cancel()
            }
        }
    }
}

public struct ControllerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
