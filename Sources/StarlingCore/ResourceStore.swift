/// What happened to one resource in an apply.
public enum ApplyOutcome: String, Sendable, Hashable {
    case created, configured, unchanged
}

public struct ApplyResult: Sendable, Hashable {
    public var resource: Resource
    public var outcome: ApplyOutcome
    public init(resource: Resource, outcome: ApplyOutcome) {
        self.resource = resource
        self.outcome = outcome
    }
}

/// One change seen by a watch. `version` is the store version at which it happened.
public struct WatchEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable { case added, modified, deleted }
    public var kind: Kind
    public var resource: Resource
    public var version: Int64
    public init(kind: Kind, resource: Resource, version: Int64) {
        self.kind = kind
        self.resource = resource
        self.version = version
    }
}

/// The one storage protocol every mesh component is written against (DESIGN.md): the SQLite store
/// in universal mode, the Kubernetes API in kubernetes mode.
public protocol ResourceStore: Sendable {
    /// Creates or replaces each resource, in one transaction: all are stored or none.
    /// The store sets `resourceVersion`, `creationTimestamp` and `uid`; those given are ignored.
    func apply(_ resources: [Resource]) async throws -> [ApplyResult]
    func get(_ key: ResourceKey) async throws -> Resource?
    /// Resources of one kind; `namespace` nil means all namespaces.
    func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> [Resource]
    /// Removes the resource and returns it, or nil when it did not exist.
    func delete(_ key: ResourceKey) async throws -> Resource?
    /// The store-wide version: it grows by one with each change.
    func currentVersion() async throws -> Int64
    /// Changes after `fromVersion` (exclusive), oldest first, then live changes as they happen.
    /// `kinds` nil means every kind. Throws `StoreError.versionTooOld` when the history
    /// needed to resume from `fromVersion` has been compacted away (the caller lists again).
    func watch(kinds: Set<String>?, fromVersion: Int64) -> AsyncThrowingStream<WatchEvent, any Error>
}
