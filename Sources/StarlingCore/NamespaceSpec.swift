/// A Namespace has nothing to configure; the type exists so every kind has a spec.
public struct NamespaceSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .namespace }

    public init() {}

    public init(_ resource: Resource) throws(ResourceError) {
        // `spec` and `status` are accepted (kubectl output has them) but must be mappings.
        let root = FieldReader(resource.body, path: "")
        _ = try root.object("spec")
        _ = try root.object("status")
    }

    public var body: JSONObject { JSONObject() }
}
