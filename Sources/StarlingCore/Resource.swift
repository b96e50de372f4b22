/// A Kubernetes-shaped document: `apiVersion`, `kind`, `metadata`, and every other top-level
/// field (`spec`, `data`, `type`, ...) kept verbatim in `body`.
public struct Resource: Sendable, Hashable {
    public var apiVersion: String
    /// The canonical kind name, e.g. `Service`, `TrafficSplit`.
    public var kind: String
    public var metadata: ObjectMeta
    /// All top-level fields other than apiVersion, kind and metadata, in document order.
    public var body: JSONObject

    public init(apiVersion: String, kind: String, metadata: ObjectMeta, body: JSONObject = JSONObject()) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
        self.body = body
    }

    public var spec: JSONObject { body["spec"]?.objectValue ?? JSONObject() }
    public var key: ResourceKey { ResourceKey(kind: kind, namespace: metadata.namespace, name: metadata.name) }
}

public struct ObjectMeta: Sendable, Hashable {
    public var name: String
    /// nil for cluster-scoped kinds (Namespace, MeshConfig).
    public var namespace: String?
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Set by the store: the store-wide version at the resource's last change.
    public var resourceVersion: Int64?
    /// Set by the store on creation (RFC 3339).
    public var creationTimestamp: String?
    public var uid: String?

    public init(
        name: String, namespace: String? = nil, labels: [String: String] = [:], annotations: [String: String] = [:],
        resourceVersion: Int64? = nil, creationTimestamp: String? = nil, uid: String? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
        self.creationTimestamp = creationTimestamp
        self.uid = uid
    }
}

/// Identifies one resource in a store.
public struct ResourceKey: Sendable, Hashable, CustomStringConvertible {
    public var kind: String
    public var namespace: String?
    public var name: String

    public init(kind: String, namespace: String?, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public var description: String {
        if let namespace { "\(kind) \(namespace)/\(name)" } else { "\(kind) \(name)" }
    }
}
