/// A typed, validated view of one kind's body (`spec`, or `data` for a Secret).
///
/// `init(_:)` reads and validates the body of a resource of that kind; `body` writes it back, so
/// components can build resources from typed values with `Resource(name:namespace:spec:)`.
public protocol ResourceSpec: Sendable, Hashable {
    /// The kind this spec belongs to.
    static var resourceKind: ResourceKind { get }
    /// Reads and validates the body of `resource`; errors carry the field path (`spec.ports[0].port`).
    init(_ resource: Resource) throws(ResourceError)
    /// The top-level fields this spec stands for, e.g. `["spec": {...}]`.
    var body: JSONObject { get }
    /// The `apiVersion` to write; the kind's preferred one unless the spec keeps its own.
    var apiVersion: String { get }
}

extension ResourceSpec {
    public var apiVersion: String { Self.resourceKind.preferredAPIVersion }
}

extension Resource {
    /// A resource of `spec`'s kind, e.g. `Resource(name: "podinfo", namespace: "test", spec: serviceSpec)`.
    public init<Spec: ResourceSpec>(
        name: String, namespace: String? = nil, labels: [String: String] = [:], annotations: [String: String] = [:],
        spec: Spec
    ) {
        self.init(
            apiVersion: spec.apiVersion, kind: Spec.resourceKind.name,
            metadata: ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations),
            body: spec.body)
    }

    /// The body of this resource read as `Spec`, e.g. `try resource.decodeSpec(as: LinkSpec.self)`.
    public func decodeSpec<Spec: ResourceSpec>(as _: Spec.Type = Spec.self) throws(ResourceError) -> Spec {
        guard kind == Spec.resourceKind.name else {
            throw ResourceError(
                .invalidValue, "expected a \(Spec.resourceKind.name), got a \(kind)", fieldPath: "kind")
        }
        return try Spec(resource: self)
    }
}

extension ResourceSpec {
    /// Calls the protocol's `init(_:)`; spelled out so generic code reads clearly.
    init(resource: Resource) throws(ResourceError) { try self.init(resource) }
}

extension FieldReader {
    /// The `spec` mapping of a resource; an absent spec reads as empty.
    static func spec(of resource: Resource) throws(ResourceError) -> FieldReader {
        let root = FieldReader(resource.body, path: "")
        return try root.object("spec") ?? FieldReader(JSONObject(), path: "spec")
    }
}
