public import StarlingCore

/// The pure step of the service mirror: from the remote cluster's exported services and the local
/// mirrors of that cluster, the mirrors to apply and the ones to delete. No I/O, so it is tested
/// without clusters.
public struct MirrorReconciler: Sendable {
    /// The linked cluster's name (the mirror suffix).
    public var cluster: String
    public var clusterDomain: String
    /// Every gateway of the linked cluster; a mirror's annotation lists them, comma-separated.
    public var gatewayAddresses: [String]
    public var gatewayPort: Int
    public var gatewayIdentity: String
    /// The Link's selector; the remote already limits a link credential to exported services.
    public var selector: LabelSelector

    public init(
        cluster: String, clusterDomain: String = "cluster.local", gatewayAddresses: [String], gatewayPort: Int,
        gatewayIdentity: String, selector: LabelSelector
    ) {
        self.cluster = cluster
        self.clusterDomain = clusterDomain
        self.gatewayAddresses = gatewayAddresses
        self.gatewayPort = gatewayPort
        self.gatewayIdentity = gatewayIdentity
        self.selector = selector
    }

    public struct Plan: Sendable, Equatable {
        public var apply: [Resource] = []
        public var delete: [ResourceKey] = []
        public var isEmpty: Bool { apply.isEmpty && delete.isEmpty }
    }

    /// A full resync: every exported remote service has an up-to-date mirror, and every mirror of
    /// this cluster whose remote service is gone (or no longer selected) is deleted.
    public func plan(remote: [Resource], local: [Resource]) -> Plan {
        var plan = Plan()
        let wanted = Dictionary(
            remote.filter { $0.kind == "Service" && selector.matches($0.metadata.labels) }
                .map { (ResourceKey(kind: "Service", namespace: $0.metadata.namespace, name: MirrorLabels.mirrorName(service: $0.metadata.name, cluster: cluster)), mirror(of: $0)) },
            uniquingKeysWith: { a, _ in a })
        let mine = local.filter { isMirrorOfThisCluster($0) }
        let existing = Dictionary(mine.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for (key, desired) in wanted.sorted(by: { $0.key.description < $1.key.description }) {
            if let current = existing[key], Self.same(current, desired) { continue }
            plan.apply.append(desired)
        }
        for key in existing.keys.sorted(by: { $0.description < $1.description }) where wanted[key] == nil {
            plan.delete.append(key)
        }
        return plan
    }

    /// One remote change: the mirror to apply, or the mirror key to delete.
    public func plan(event kind: WatchEvent.Kind, remote: Resource, local: Resource?) -> Plan {
        let key = ResourceKey(kind: "Service", namespace: remote.metadata.namespace, name: MirrorLabels.mirrorName(service: remote.metadata.name, cluster: cluster))
        var plan = Plan()
        if kind == .deleted || !selector.matches(remote.metadata.labels) {
            if let local, isMirrorOfThisCluster(local) { plan.delete.append(key) }
            return plan
        }
        let desired = mirror(of: remote)
        if let local, Self.same(local, desired) { return plan }
        plan.apply.append(desired)
        return plan
    }

    public func isMirrorOfThisCluster(_ r: Resource) -> Bool {
        r.kind == "Service" && r.metadata.labels[MirrorLabels.mirroredService] == "true"
            && r.metadata.labels[MirrorLabels.clusterName] == cluster
    }

    /// The local mirror of a remote service: its ports, its labels (without the export label),
    /// marked as a mirror of this cluster, annotated with where its traffic goes.
    public func mirror(of remote: Resource) -> Resource {
        var labels = remote.metadata.labels
        labels[MirrorLabels.exported] = nil
        labels[MirrorLabels.mirroredService] = "true"
        labels[MirrorLabels.clusterName] = cluster
        let namespace = remote.metadata.namespace ?? "default"
        let annotations = [
            MirrorLabels.remoteService: "\(remote.metadata.name).\(namespace).svc.\(clusterDomain)",
            MirrorLabels.remoteResourceVersion: remote.metadata.resourceVersion.map(String.init) ?? "",
            MirrorLabels.gatewayAddress: gatewayAddresses.joined(separator: ","),
            MirrorLabels.gatewayPort: "\(gatewayPort)",
            MirrorLabels.gatewayIdentity: gatewayIdentity,
        ]
        var spec = JSONObject()
        if let ports = remote.spec["ports"] { spec["ports"] = ports }
        return Resource(
            apiVersion: "v1", kind: "Service",
            metadata: ObjectMeta(
                name: MirrorLabels.mirrorName(service: remote.metadata.name, cluster: cluster), namespace: namespace,
                labels: labels, annotations: annotations),
            body: JSONObject([("spec", .object(spec))]))
    }

    static func same(_ a: Resource, _ b: Resource) -> Bool {
        a.metadata.labels == b.metadata.labels && a.metadata.annotations == b.metadata.annotations && a.body == b.body
    }
}
