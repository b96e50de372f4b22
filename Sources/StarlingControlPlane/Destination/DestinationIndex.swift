import Foundation
import Logging
import StarlingCore
import StarlingMulticluster
import Synchronization

/// One endpoint of a service as the destination API reports it.
struct Endpoint: Sendable, Hashable {
    var ip: String
    var port: Int
    var identity: String?
    var opaque: Bool
    var labels: [String: String]
    /// For mirrored services: the authority to name to the remote gateway.
    var authorityOverride: String? = nil
}

/// An in-memory view of the services, workloads and traffic splits in the store, kept current by
/// a watch, that destination streams read. Each change wakes every open stream, which recomputes
/// its own answer and sends only what changed.
final class DestinationIndex: Sendable {
    struct Snapshot: Sendable {
        var version: Int64 = 0
        var services: [String: [String: Resource]] = [:]  // namespace → name → Service
        var workloads: [String: [String: Resource]] = [:]  // namespace → name → Workload
        var splits: [String: [String: Resource]] = [:]  // namespace → name → TrafficSplit
        var routes: [String: [String: Resource]] = [:]  // namespace → name → HTTPRoute
        /// Namespaces, Servers, AuthorizationPolicies and authentications, for inbound policy:
        /// namespace → kind → name → resource.
        var policy: [String: [String: [String: Resource]]] = [:]
        /// The cluster's MeshConfig (cluster-scoped, one per cluster).
        var meshConfig: Resource?
        /// Liveness of one gateway (`host:port`) of a linked cluster (for mirrored services).
        var isGatewayAlive: @Sendable (_ cluster: String, _ gateway: String) -> Bool = { _, _ in true }
    }

    static let kinds: Set<String> = Set(["Service", "Workload", "TrafficSplit", "HTTPRoute", "MeshConfig"]).union(policyKinds)
    /// The kinds inbound policy reads besides Workloads and HTTPRoutes.
    static let policyKinds: Set<String> = [
        "Namespace", "Server", "AuthorizationPolicy", "MeshTLSAuthentication", "NetworkAuthentication",
    ]

    private let state = Mutex(Snapshot())
    private let subscribers = Mutex<[UUID: AsyncStream<Int64>.Continuation]>([:])
    private let ready = Mutex(false)
    private let store: any ResourceStore
    private let multicluster: MulticlusterRegistry
    private let logger: Logger

    init(store: any ResourceStore, multicluster: MulticlusterRegistry = MulticlusterRegistry(), logger: Logger) {
        self.store = store
        self.multicluster = multicluster
        self.logger = logger
    }

    var snapshot: Snapshot {
        var s = state.withLock { $0 }
        s.isGatewayAlive = multicluster.isAlive(_:gateway:)
        return s
    }
    var isReady: Bool { ready.withLock { $0 } }

    /// Lists everything, then follows the store's changes until cancelled. Re-lists when the
    /// watch falls too far behind.
    func run() async throws {
        // Gateway liveness changes move mirrored services' endpoints: wake every stream.
        let liveness = Task { [multicluster] in
            for await _ in multicluster.changes() { self.notify(self.snapshot.version) }
        }
        defer { liveness.cancel() }
        while !Task.isCancelled {
            let version = try await relist()
            do {
                // Every kind, so the index's version follows the store's (resumed streams compare
                // versions across replicas); only the kinds it indexes wake streams.
                for try await event in store.watch(kinds: nil, fromVersion: version) {
                    apply(event)
                }
            } catch let error as StoreError where error.code == .versionTooOld {
                logger.notice("destination index fell behind the store; listing again")
            }
        }
    }

    private func relist() async throws -> Int64 {
        let version = try await store.currentVersion()
        var fresh = Snapshot()
        fresh.version = version
        for kind in Self.kinds {
            for resource in try await store.list(kind: kind, namespace: nil, selector: nil) {
                Self.put(resource, into: &fresh)
            }
        }
        state.withLock { $0 = fresh }
        ready.withLock { $0 = true }
        notify(version)
        return version
    }

    private func apply(_ event: WatchEvent) {
        guard Self.kinds.contains(event.resource.kind) else {
            state.withLock { $0.version = event.version }
            return
        }
        state.withLock { snapshot in
            snapshot.version = event.version
            if event.kind == .deleted {
                Self.remove(event.resource, from: &snapshot)
            } else {
                Self.put(event.resource, into: &snapshot)
            }
        }
        notify(event.version)
    }

    private static func put(_ r: Resource, into s: inout Snapshot) {
        let ns = r.metadata.namespace ?? "default"
        switch r.kind {
        case "Service": s.services[ns, default: [:]][r.metadata.name] = r
        case "Workload": s.workloads[ns, default: [:]][r.metadata.name] = r
        case "TrafficSplit": s.splits[ns, default: [:]][r.metadata.name] = r
        case "HTTPRoute": s.routes[ns, default: [:]][r.metadata.name] = r
        case "MeshConfig": s.meshConfig = r
        case "Namespace": s.policy[r.metadata.name, default: [:]]["Namespace", default: [:]][r.metadata.name] = r
        case let kind where policyKinds.contains(kind): s.policy[ns, default: [:]][kind, default: [:]][r.metadata.name] = r
        default: break
        }
    }

    private static func remove(_ r: Resource, from s: inout Snapshot) {
        let ns = r.metadata.namespace ?? "default"
        switch r.kind {
        case "Service": s.services[ns]?[r.metadata.name] = nil
        case "Workload": s.workloads[ns]?[r.metadata.name] = nil
        case "TrafficSplit": s.splits[ns]?[r.metadata.name] = nil
        case "HTTPRoute": s.routes[ns]?[r.metadata.name] = nil
        case "MeshConfig": s.meshConfig = nil
        case "Namespace": s.policy[r.metadata.name]?["Namespace"]?[r.metadata.name] = nil
        case let kind where policyKinds.contains(kind): s.policy[ns]?[kind]?[r.metadata.name] = nil
        default: break
        }
    }

    /// A stream of store versions: one element now, then one per change (only the newest is kept
    /// when a reader is slow: readers recompute from the snapshot, so skipping is harmless).
    func changes() -> AsyncStream<Int64> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Int64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        continuation.onTermination = { [weak self] _ in
            self?.subscribers.withLock { _ = $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        continuation.yield(snapshot.version)
        return stream
    }

    /// Waits until the index reflects store version `version` or `limit` passed, whichever comes
    /// first: a stream resumed on this replica must not answer with a state older than the one the
    /// proxy already holds from another replica. Polls: resumes are rare, and the index's version
    /// also moves on changes that wake no stream.
    func catchUp(to version: Int64, within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while state.withLock({ $0.version }) < version, ContinuousClock.now < deadline {
            do {
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                return
            }
        }
    }

    var subscriberCount: Int { subscribers.withLock { $0.count } }

    private func notify(_ version: Int64) {
        let targets = subscribers.withLock { Array($0.values) }
        for c in targets { c.yield(version) }
    }
}

// MARK: - Answers

extension DestinationIndex.Snapshot {
    /// The ready endpoints of a service's port; nil when the service does not exist.
    func endpoints(of authority: ServiceAuthority) -> Set<Endpoint>? {
        guard let serviceResource = services[authority.namespace]?[authority.service],
            let service = try? ServiceSpec(serviceResource)
        else { return nil }
        let servicePort = self.servicePort(service, authority.port)
        if serviceResource.metadata.labels[MirrorLabels.mirroredService] == "true" {
            return mirrorEndpoints(serviceResource, servicePort: servicePort ?? service.ports.first)
        }
        let targetPort = servicePort.flatMap { $0.targetPort } ?? servicePort?.port ?? authority.port
        let opaque = servicePort.map(Self.isOpaque) ?? false
        let selector = service.effectiveSelector(serviceName: authority.service)
        var result = Set<Endpoint>()
        for workload in (workloads[authority.namespace] ?? [:]).values {
            guard !selector.isEmpty, LabelSelector(matchLabels: selector).matches(workload.metadata.labels),
                let spec = try? WorkloadSpec(workload), spec.ready
            else { continue }
            let port: Int? =
                if let targetPort {
                    spec.ports.first(where: { ($0.appPort ?? $0.port) == targetPort })?.port
                } else {
                    spec.ports.first?.port
                }
            guard let port else { continue }
            result.insert(
                Endpoint(
                    ip: spec.address, port: port, identity: spec.identity, opaque: opaque,
                    labels: ["workload": workload.metadata.name, "namespace": authority.namespace]))
        }
        return result
    }

    /// The workloads listening on `host:port` (their application port), for connections captured
    /// transparently and routed by their original destination; nil when no workload has that
    /// address and port.
    func endpoints(atAddress host: String, port: Int) -> Set<Endpoint>? {
        var found = false
        var result = Set<Endpoint>()
        for (namespace, byName) in workloads {
            for workload in byName.values {
                guard let spec = try? WorkloadSpec(workload), spec.address == host,
                    let entry = spec.ports.first(where: { ($0.appPort ?? $0.port) == port })
                else { continue }
                found = true
                guard spec.ready else { continue }
                let opaque = entry.protocol.map { ["opaque", "tcp"].contains($0.lowercased()) } ?? false
                result.insert(
                    Endpoint(
                        ip: spec.address, port: entry.port, identity: spec.identity, opaque: opaque,
                        labels: ["workload": workload.metadata.name, "namespace": namespace]))
            }
        }
        return found ? result : nil
    }

    /// A mirror's endpoints: the remote cluster's live gateways (one per replica), each asked for
    /// the remote authority — none while every gateway is dead, so splits shift its share
    /// elsewhere.
    func mirrorEndpoints(_ mirror: Resource, servicePort: ServicePort?) -> Set<Endpoint> {
        let a = mirror.metadata.annotations
        guard let cluster = mirror.metadata.labels[MirrorLabels.clusterName],
            let addresses = a[MirrorLabels.gatewayAddress], let port = a[MirrorLabels.gatewayPort].flatMap(Int.init),
            let remote = a[MirrorLabels.remoteService]
        else { return [] }
        let remoteAuthority = remote + (servicePort.map { ":\($0.port)" } ?? "")
        var endpoints = Set<Endpoint>()
        for address in MirrorLabels.gatewayHosts(addresses) {
            let gateway = NetworkAddress.joinHostPort(address, port)
            guard isGatewayAlive(cluster, gateway) else { continue }
            endpoints.insert(Endpoint(
                ip: address, port: port, identity: a[MirrorLabels.gatewayIdentity],
                opaque: servicePort.map(Self.isOpaque) ?? false,
                labels: ["cluster": cluster, "gateway": gateway], authorityOverride: remoteAuthority))
        }
        return endpoints
    }

    func servicePort(_ service: ServiceSpec, _ port: Int?) -> ServicePort? {
        if let port { return service.ports.first(where: { $0.port == port }) }
        return service.ports.first
    }

    static func isOpaque(_ port: ServicePort) -> Bool {
        guard let p = port.appProtocol?.lowercased() else { return false }
        return ["opaque", "tcp", "postgresql", "postgres", "mysql", "redis", "smtp", "memcached"].contains(p)
    }

    /// Weighted backends for a service from a TrafficSplit (or an HTTPRoute), as authorities with
    /// milli-weights; empty when traffic goes to the service itself.
    func backends(of authority: ServiceAuthority, clusterDomain: String) -> [(authority: String, weight: UInt64)] {
        let portSuffix = authority.port.map { ":\($0)" } ?? ""
        let splitsHere = (splits[authority.namespace] ?? [:]).values.sorted { $0.metadata.name < $1.metadata.name }
        for resource in splitsHere {
            guard let split = try? TrafficSplitSpec(resource), split.service == authority.service else { continue }
            return split.backends.map {
                ("\($0.service).\(authority.namespace).svc.\(clusterDomain)\(portSuffix)", UInt64(max(0, $0.weight)))
            }
        }
        let routesHere = (routes[authority.namespace] ?? [:]).values.sorted { $0.metadata.name < $1.metadata.name }
        for resource in routesHere {
            guard let route = try? HTTPRouteSpec(resource), route.parentRefs.contains(where: { $0.isService && $0.name == authority.service }),
                let rule = route.rules.first, !rule.backendRefs.isEmpty
            else { continue }
            return rule.backendRefs.map { ref in
                let port = ref.port.map { ":\($0)" } ?? portSuffix
                return ("\(ref.name).\(authority.namespace).svc.\(clusterDomain)\(port)", UInt64(max(0, ref.weight)) * 1000)
            }
        }
        return []
    }
}
