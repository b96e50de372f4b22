import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// The Resources API: apply / get / list / delete / watch over the cluster's store.
struct ResourcesService: Starling_V1_Resources.ServiceProtocol {
    let store: any ResourceStore
    let auth: Authenticator
    let logger: Logger

    public init(store: any ResourceStore, auth: Authenticator, logger: Logger) {
        self.store = store
        self.auth = auth
        self.logger = logger
    }

    func apply(
        request: ServerRequest<Starling_V1_ApplyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_ApplyResponse> {
        try auth.requireAdmin(request.metadata, for: "apply")
        let source = request.message.source.isEmpty ? "request" : request.message.source
        var resources: [Resource] = []
        for (index, json) in request.message.resourcesJson.enumerated() {
            do {
                let decoded = try ResourceDecoder.decode(json, source: source)
                resources += decoded.map { $0.defaultingNamespace() }
            } catch {
                var error = error
                error.documentIndex = index
                throw RPCError(code: .invalidArgument, message: error.description)
            }
        }
        resources = try await withImplicitNamespaces(resources)
        let results = try await StoreCall.run("apply") { try await store.apply(resources) }
        var response = Starling_V1_ApplyResponse()
        response.results = results.map { result in
            var r = Starling_V1_ApplyResult()
            r.kind = result.resource.kind
            r.namespace = result.resource.metadata.namespace ?? ""
            r.name = result.resource.metadata.name
            r.outcome = result.outcome.rawValue
            r.resourceVersion = result.resource.metadata.resourceVersion ?? 0
            return r
        }
        let changed = results.filter { $0.outcome != .unchanged }.count
        if changed > 0 { logger.info("applied resources", metadata: ["changed": "\(changed)", "source": "\(source)"]) }
        return ServerResponse(message: response)
    }

    /// Kubernetes refuses resources in a namespace that does not exist; a mesh on hosts has no
    /// one to create namespaces first, so an apply creates the namespaces its resources name.
    private func withImplicitNamespaces(_ resources: [Resource]) async throws -> [Resource] {
        let named = Set(resources.compactMap(\.metadata.namespace))
        let declared = Set(resources.filter { $0.kind == "Namespace" }.map(\.metadata.name))
        var implicit: [Resource] = []
        for ns in named.subtracting(declared).sorted() {
            let key = ResourceKey(kind: "Namespace", namespace: nil, name: ns)
            if try await StoreCall.run("get", { try await store.get(key) }) == nil {
                implicit.append(Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: ns)))
            }
        }
        return implicit + resources
    }

    func get(
        request: ServerRequest<Starling_V1_GetRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_GetResponse> {
        try auth.requireAdmin(request.metadata, for: "get")
        let kind = try ResourceKinds.resolve(request.message.kind)
        let key = ResourceKey(
            kind: kind.name, namespace: kind.namespaced ? request.message.namespace.orDefault : nil,
            name: request.message.name)
        guard let resource = try await StoreCall.run("get", { try await store.get(key) }) else {
            throw RPCError(code: .notFound, message: "\(kind.plural) \"\(key.name)\" not found\(key.namespace.map { " in namespace \($0)" } ?? "")")
        }
        var response = Starling_V1_GetResponse()
        response.resourceJson = ResourceEncoder.compactJSON(resource)
        return ServerResponse(message: response)
    }

    func list(
        request: ServerRequest<Starling_V1_ListRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_ListResponse> {
        let caller = try auth.authenticate(request.metadata)
        let kind = try ResourceKinds.resolve(request.message.kind)
        var selector = try ResourceKinds.selector(request.message.labelSelector)
        if case .link = caller { selector = try Self.exportedOnly(kind, selector) } else { try auth.requireAdmin(request.metadata, for: "list") }
        let namespace: String? =
            kind.namespaced && !request.message.allNamespaces ? request.message.namespace.orDefault : nil
        // Read the version first: a change between the two reads is then seen again by a watch
        // from this version, never missed.
        let version = try await StoreCall.run("list") { try await store.currentVersion() }
        let resources = try await StoreCall.run("list") {
            try await store.list(kind: kind.name, namespace: namespace, selector: selector)
        }
        var response = Starling_V1_ListResponse()
        response.resourcesJson = resources.map(ResourceEncoder.compactJSON)
        response.version = version
        return ServerResponse(message: response)
    }

    func delete(
        request: ServerRequest<Starling_V1_DeleteRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_DeleteResponse> {
        try auth.requireAdmin(request.metadata, for: "delete")
        let kind = try ResourceKinds.resolve(request.message.kind)
        let key = ResourceKey(
            kind: kind.name, namespace: kind.namespaced ? request.message.namespace.orDefault : nil,
            name: request.message.name)
        guard let deleted = try await StoreCall.run("delete", { try await store.delete(key) }) else {
            throw RPCError(code: .notFound, message: "\(kind.plural) \"\(key.name)\" not found\(key.namespace.map { " in namespace \($0)" } ?? "")")
        }
        logger.info("deleted resource", metadata: ["resource": "\(key)"])
        var response = Starling_V1_DeleteResponse()
        response.resourceJson = ResourceEncoder.compactJSON(deleted)
        return ServerResponse(message: response)
    }

    /// What a link credential may read: services carrying the export label, further narrowed
    /// by the caller's selector.
    static let exportLabel = LabelSelector.Requirement.equals("mirror.starling.io/exported", "true")

    static func exportedOnly(_ kind: ResourceKind, _ selector: LabelSelector?) throws(RPCError) -> LabelSelector {
        guard kind.name == "Service" else {
            throw RPCError(code: .permissionDenied, message: "a link credential may only read services")
        }
        return LabelSelector(requirements: [exportLabel] + (selector?.requirements ?? []))
    }

    func watch(
        request: ServerRequest<Starling_V1_WatchRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Starling_V1_WatchEvent> {
        let caller = try auth.authenticate(request.metadata)
        let kinds = try request.message.kinds.map { try ResourceKinds.resolve($0).name }
        var selector = try ResourceKinds.selector(request.message.labelSelector)
        if case .link = caller {
            guard kinds == ["Service"] else {
                throw RPCError(code: .permissionDenied, message: "a link credential may only watch services")
            }
            selector = try Self.exportedOnly(.service, selector)
        } else {
            try auth.requireAdmin(request.metadata, for: "watch")
        }
        let namespace = request.message.namespace.isEmpty ? nil : request.message.namespace
        let events = store.watch(kinds: kinds.isEmpty ? nil : Set(kinds), fromVersion: request.message.fromVersion)
        let isLink = if case .link = caller { true } else { false }
        let filter = selector
        return StreamingServerResponse { writer in
            do {
                for try await event in events {
                    if let namespace, event.resource.metadata.namespace != namespace { continue }
                    var event = event
                    if let filter, !filter.matches(event.resource.metadata.labels) {
                        // A service mirror must learn that a service stopped being exported:
                        // tell it the service is gone, naming nothing but its key.
                        guard isLink else { continue }
                        event = WatchEvent(kind: .deleted, resource: Resource(
                            apiVersion: event.resource.apiVersion, kind: event.resource.kind,
                            metadata: ObjectMeta(name: event.resource.metadata.name, namespace: event.resource.metadata.namespace)),
                            version: event.version)
                    }
                    var message = Starling_V1_WatchEvent()
                    message.type = event.kind.rawValue
                    message.resourceJson = ResourceEncoder.compactJSON(event.resource)
                    message.version = event.version
                    try await writer.write(message)
                }
            } catch let error as StoreError where error.code == .versionTooOld {
                throw RPCError(code: .outOfRange, message: error.message)
            }
            return [:]
        }
    }
}

extension String {
    /// The namespace a namespaced request means when it names none.
    var orDefault: String { isEmpty ? "default" : self }
}

extension Resource {
    /// Namespaced kinds without a namespace go to `default`, as with kubectl.
    func defaultingNamespace() -> Resource {
        guard metadata.namespace == nil, ResourceKind.lookup(kind)?.namespaced == true else { return self }
        var copy = self
        copy.metadata.namespace = "default"
        return copy
    }
}

/// Kind names and selectors from requests, refused with `invalidArgument` when unknown.
enum ResourceKinds {
    static func resolve(_ name: String) throws(RPCError) -> ResourceKind {
        guard let kind = ResourceKind.lookup(name) else {
            let known = ResourceKind.all.map(\.name).joined(separator: ", ")
            throw RPCError(code: .invalidArgument, message: "unknown kind \"\(name)\" (known kinds: \(known))")
        }
        return kind
    }

    static func selector(_ text: String) throws(RPCError) -> LabelSelector? {
        guard !text.isEmpty else { return nil }
        do { return try LabelSelector.parse(text) } catch {
            throw RPCError(code: .invalidArgument, message: "label selector \"\(text)\": \(error.message)")
        }
    }
}

/// Runs a store call and turns store failures into gRPC statuses in one place.
enum StoreCall {
    static func run<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            switch error.code {
            case .invalid: throw RPCError(code: .invalidArgument, message: "\(what): \(error.description)")
            case .versionTooOld: throw RPCError(code: .outOfRange, message: "\(what): \(error.description)")
            // Not `unavailable`: clients retry that on another replica, and this may have been done.
            case .noAnswer:
                throw RPCError(code: .unknown, message: "\(what): the store gave no answer; it may or may not have taken effect: \(error.description)")
            default: throw RPCError(code: .unavailable, message: "\(what): store unavailable: \(error.description)")
            }
        }
    }
}
