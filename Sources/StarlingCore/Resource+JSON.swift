// MARK: - Resource <-> JSONValue

extension Resource {
    /// The resource as one ordered JSON object: `apiVersion`, `kind`, `metadata` (name,
    /// namespace, labels, annotations, resourceVersion as a string, creationTimestamp, uid), then
    /// the body in its original order. Label and annotation keys are sorted.
    public var jsonValue: JSONValue {
        var object = JSONObject()
        object["apiVersion"] = .string(apiVersion)
        object["kind"] = .string(kind)
        object["metadata"] = .object(metadata.jsonObject)
        for (key, value) in body where key != "apiVersion" && key != "kind" && key != "metadata" {
            object[key] = value
        }
        return .object(object)
    }

    /// Reads a resource from its JSON shape: apiVersion, kind and metadata.name present and of
    /// the right types, labels and annotations string maps. It does not check that the kind is
    /// known or that the spec is valid: `ResourceValidator.validate` does that.
    public init(json: JSONValue) throws(ResourceError) {
        guard case .object(let object) = json else {
            throw ResourceError(
                .notAnObject,
                "expected a mapping with apiVersion, kind and metadata, got \(FieldReader.describe(json))")
        }
        let root = FieldReader(object, path: "")
        let apiVersion = try root.requiredString("apiVersion")
        let kind = try root.requiredString("kind")
        let metadata = try ObjectMeta(reading: try root.requiredObject("metadata"))
        var body = JSONObject()
        for (key, value) in object where key != "apiVersion" && key != "kind" && key != "metadata" {
            body[key] = value
        }
        self.init(apiVersion: apiVersion, kind: kind, metadata: metadata, body: body)
    }

    /// This resource with `metadata.namespace` set to `namespace` when it is unset and its kind
    /// is namespaced (what `apply -n NS` does). Cluster-scoped and unknown kinds are unchanged.
    public func withDefaultNamespace(_ namespace: String) -> Resource {
        guard metadata.namespace == nil, ResourceKind.named(kind)?.namespaced == true else { return self }
        var copy = self
        copy.metadata.namespace = namespace
        return copy
    }

    /// The kind's registry entry, nil for a kind Starling does not know.
    public var resourceKind: ResourceKind? { ResourceKind.named(kind) }
}

extension ObjectMeta {
    /// Metadata as written in documents; unset fields are left out.
    var jsonObject: JSONObject {
        var object = JSONObject()
        object["name"] = .string(name)
        if let namespace { object["namespace"] = .string(namespace) }
        if !labels.isEmpty { object["labels"] = .object(Self.sortedMap(labels)) }
        if !annotations.isEmpty { object["annotations"] = .object(Self.sortedMap(annotations)) }
        if let resourceVersion { object["resourceVersion"] = .string(String(resourceVersion)) }
        if let creationTimestamp { object["creationTimestamp"] = .string(creationTimestamp) }
        if let uid { object["uid"] = .string(uid) }
        return object
    }

    /// Reads metadata; fields Starling does not keep (`generation`, `managedFields`, ...) are ignored.
    init(reading meta: FieldReader) throws(ResourceError) {
        let name = try meta.requiredString("name")
        let namespace = try meta.string("namespace").flatMap { $0.isEmpty ? nil : $0 }
        let labels = try meta.stringMap("labels") ?? [:]
        let annotations = try meta.stringMap("annotations") ?? [:]
        var resourceVersion: Int64?
        switch meta.value("resourceVersion") {
        case nil: resourceVersion = nil
        case .int(let i)?: resourceVersion = i
        case .string(let s)? where Int64(s) != nil: resourceVersion = Int64(s)
        case .string("")?: resourceVersion = nil
        case let other?:
            throw meta.invalid("resourceVersion", "expected a decimal version, got \(FieldReader.describe(other))")
        }
        self.init(
            name: name, namespace: namespace, labels: labels, annotations: annotations,
            resourceVersion: resourceVersion, creationTimestamp: try meta.string("creationTimestamp"),
            uid: try meta.string("uid"))
    }

    private static func sortedMap(_ map: [String: String]) -> JSONObject {
        JSONObject(map.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) })
    }
}
