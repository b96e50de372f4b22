import Foundation
public import Logging
public import StarlingCore

/// Runs, for each `Link` in the local store, one service mirror, one credential renewer and one
/// prober per gateway: starting, restarting (when the Link or its credentials change) and
/// stopping them as Links come and go. Unlinking removes the link's mirrors.
public struct MulticlusterController: Sendable {
    /// What this instance runs per Link. One controller runs both. Replicas sharing a database
    /// all probe the gateways (each serves Destination answers from its own liveness view), and
    /// the one that holds the service-mirror duty mirrors, through a fenced store.
    public enum Mode: Sendable {
        case probesAndMirrors, probesOnly, mirrorsOnly
        var probes: Bool { self != .mirrorsOnly }
        var mirrors: Bool { self != .probesOnly }
    }

    let store: any ResourceStore
    public let registry: MulticlusterRegistry
    let logger: Logger
    let mode: Mode

    public init(store: any ResourceStore, registry: MulticlusterRegistry, logger: Logger, mode: Mode = .probesAndMirrors) {
        self.store = store
        self.registry = registry
        self.logger = logger
        self.mode = mode
    }

    private struct Running {
        var fingerprint: String
        var task: Task<Void, Never>
    }

    public func run() async throws {
        var running: [String: Running] = [:]
        defer { for r in running.values { r.task.cancel() } }
        var version = try await store.currentVersion()
        while !Task.isCancelled {
            running = try await reconcile(running)
            do {
                for try await event in store.watch(kinds: ["Link", "Secret"], fromVersion: version) {
                    version = event.version
                    // Only links and their credentials matter, not every secret of the cluster.
                    if event.resource.kind == "Secret", event.resource.metadata.namespace != MirrorLabels.namespace { continue }
                    if mode.mirrors, event.kind == .deleted, event.resource.kind == "Link" {
                        try await removeMirrors(of: event.resource)
                    }
                    running = try await reconcile(running)
                }
            } catch let error as StoreError where error.code == .versionTooOld {
                version = try await store.currentVersion()
            }
        }
    }

    /// Desired link loops from the store; restarts those whose Link or credentials changed.
    private func reconcile(_ current: [String: Running]) async throws -> [String: Running] {
        var next: [String: Running] = [:]
        let links = try await store.list(kind: "Link", namespace: nil, selector: nil)
        for resource in links {
            let name = "\(resource.metadata.namespace ?? "")/\(resource.metadata.name)"
            guard let spec = try? LinkSpec(resource) else {
                logger.error("link is invalid; not mirroring", metadata: ["link": "\(name)"])
                continue
            }
            let secretKey = ResourceKey(kind: "Secret", namespace: resource.metadata.namespace ?? MirrorLabels.namespace, name: spec.credentialsSecret)
            let secret = try await store.get(secretKey).flatMap { try? SecretSpec($0) }
            // Deterministic: a restart happens only when the Link or its credentials really change.
            let credentials = secret.map { $0.data.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";") }
            let fingerprint = "\(resource.metadata.resourceVersion ?? 0)/\(credentials ?? "none")"
            if let existing = current[name], existing.fingerprint == fingerprint {
                next[name] = existing
                continue
            }
            current[name]?.task.cancel()
            guard let secret, let token = secret.string("token"), let ca = secret.string("ca.crt") else {
                registry.register(cluster: spec.targetClusterName, gateways: spec.gatewayEndpoints)
                registry.update(spec.targetClusterName) { $0.mirrorState = "error: credentials secret \(secretKey) is missing or lacks token/ca.crt" }
                logger.error("link has no usable credentials", metadata: ["link": "\(name)", "secret": "\(secretKey)"])
                continue
            }
            registry.register(cluster: spec.targetClusterName, gateways: spec.gatewayEndpoints)
            if let expiry = secret.string("expires-at").flatMap(Double.init) {
                registry.update(spec.targetClusterName) { $0.credentialExpiresAt = Date(timeIntervalSince1970: expiry) }
            }
            let watcher = ClusterWatcher(
                link: spec, token: token, remoteCertificatePEM: ca, store: store, registry: registry,
                logger: logger)
            // The replica that mirrors (one, under a lease) also renews the credential.
            let renewer = LinkCredentialRenewer(
                link: spec, secretKey: secretKey, token: token, remoteCertificatePEM: ca, store: store, registry: registry,
                logger: logger)
            let probers = spec.gatewayAddresses.map { host in
                ProbeWorker(
                    cluster: spec.targetClusterName, host: host, gatewayPort: spec.gatewayPort, port: spec.probeSpec.port,
                    path: spec.probeSpec.path, period: spec.probeSpec.period, registry: registry, logger: logger)
            }
            logger.info(
                mode.mirrors ? "link started" : "link probes started",
                metadata: ["cluster": "\(spec.targetClusterName)", "api": "\(spec.apiAddress)", "gateways": "\(spec.gatewayEndpoints.joined(separator: ","))"])
            let mode = mode
            let task = Task {
                await withDiscardingTaskGroup { group in
                    if mode.mirrors {
                        group.addTask { await watcher.run() }
                        group.addTask { await renewer.run() }
                    }
                    if mode.probes { for prober in probers { group.addTask { await prober.run() } } }
                }
            }
            next[name] = Running(fingerprint: fingerprint, task: task)
        }
        for (name, r) in current where next[name] == nil {
            r.task.cancel()
            logger.info("link stopped", metadata: ["link": "\(name)"])
        }
        let clusters = Set(links.compactMap { try? LinkSpec($0).targetClusterName })
        for status in registry.statuses() where !clusters.contains(status.cluster) {
            registry.remove(cluster: status.cluster)
        }
        return next
    }

    private func removeMirrors(of link: Resource) async throws {
        let cluster = (try? LinkSpec(link).targetClusterName) ?? link.metadata.name
        let mirrors = try await store.list(kind: "Service", namespace: nil, selector: LabelSelector(matchLabels: [
            MirrorLabels.mirroredService: "true", MirrorLabels.clusterName: cluster,
        ]))
        for mirror in mirrors { _ = try await store.delete(mirror.key) }
        if !mirrors.isEmpty {
            logger.info("unlinked: mirrors removed", metadata: ["cluster": "\(cluster)", "count": "\(mirrors.count)"])
        }
    }
}
