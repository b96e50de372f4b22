import Foundation
import StarlingCore

/// What an `apply` writes, worked out from the batch and the stored state before any row is
/// written — the same for every store, so that SQLite and PostgreSQL agree on outcomes, versions,
/// `creationTimestamp` and `uid`.
///
/// A resource whose apiVersion, labels, annotations and body equal the stored ones is `.unchanged`
/// and costs no version. Others get the next version; `creationTimestamp` and `uid` are set on
/// creation and kept afterwards. A key may appear more than once in a batch: each appearance is one
/// change, and the last one is the stored row.
struct ApplyPlan {
    /// One changed resource, as stored and as the history records it.
    struct Change {
        var key: ResourceKey
        var kind: WatchEvent.Kind
        var resource: Resource
        var json: String
        var version: Int64 { resource.metadata.resourceVersion ?? 0 }
    }

    /// Results in input order.
    var results: [ApplyResult] = []
    /// The changes in version order (one history row each).
    var changes: [Change] = []
    /// The store version after the batch.
    var finalVersion: Int64

    /// The rows to upsert: the last change of each key, in the order keys were first changed.
    var finalRows: [Change] {
        var last: [ResourceKey: Int] = [:]
        for (index, change) in changes.enumerated() { last[change.key] = index }
        return changes.enumerated().filter { last[$0.element.key] == $0.offset }.map(\.element)
    }

    var events: [WatchEvent] { changes.map { WatchEvent(kind: $0.kind, resource: $0.resource, version: $0.version) } }

    init(
        resources: [Resource], keys: [ResourceKey], stored: [ResourceKey: Resource], currentVersion: Int64, now: String,
        form: StoredForm
    ) throws(StoreError) {
        var stored = stored
        var version = currentVersion
        results.reserveCapacity(resources.count)
        for (input, key) in zip(resources, keys) {
            let current = stored[key]
            if let current, current.apiVersion == input.apiVersion,
                current.metadata.labels == input.metadata.labels,
                current.metadata.annotations == input.metadata.annotations, current.body == input.body
            {
                results.append(ApplyResult(resource: current, outcome: .unchanged))
                continue
            }
            version += 1
            var resource = input
            resource.metadata.namespace = key.namespace
            resource.metadata.resourceVersion = version
            resource.metadata.creationTimestamp = current?.metadata.creationTimestamp ?? now
            resource.metadata.uid = current?.metadata.uid ?? UUID().uuidString.lowercased()
            stored[key] = resource
            changes.append(
                Change(
                    key: key, kind: current == nil ? .added : .modified, resource: resource,
                    json: try form.text(of: resource)))
            results.append(ApplyResult(resource: resource, outcome: current == nil ? .created : .configured))
        }
        finalVersion = version
    }

    /// The key a resource is stored under. Namespaced kinds need a namespace and cluster-scoped
    /// kinds must have none; an empty namespace counts as none. Kinds unknown to `ResourceKind` are
    /// stored under the namespace they carry.
    static func validatedKey(of resource: Resource, at index: Int, of count: Int) throws(StoreError) -> ResourceKey {
        let position = count > 1 ? " (resource \(index + 1) of \(count))" : ""
        let namespace = resource.metadata.namespace.flatMap { $0.isEmpty ? nil : $0 }
        let key = ResourceKey(kind: resource.kind, namespace: namespace, name: resource.metadata.name)
        guard !resource.kind.isEmpty else {
            throw StoreError(.invalid, "a resource named '\(resource.metadata.name)' has no kind\(position)")
        }
        guard !resource.metadata.name.isEmpty else {
            throw StoreError(.invalid, "a \(resource.kind) has no metadata.name\(position)")
        }
        if let kind = ResourceKind.named(resource.kind) {
            if kind.namespaced, namespace == nil {
                throw StoreError(.invalid, "\(key) has no metadata.namespace, which a \(resource.kind) needs\(position)")
            }
            if !kind.namespaced, let namespace {
                throw StoreError(
                    .invalid,
                    "\(key) is cluster-scoped but has metadata.namespace '\(namespace)'; remove it\(position)"
                )
            }
        }
        return key
    }

    /// The keys of a batch, validated; nothing is stored when one is wrong.
    static func validatedKeys(of resources: [Resource]) throws(StoreError) -> [ResourceKey] {
        var keys: [ResourceKey] = []
        keys.reserveCapacity(resources.count)
        for (index, resource) in resources.enumerated() {
            keys.append(try validatedKey(of: resource, at: index, of: resources.count))
        }
        return keys
    }
}
