/// Checks a whole resource: known kind and apiVersion, a valid name, namespace scoping, labels
/// and annotations by Kubernetes' rules, then the kind's typed spec.
public enum ResourceValidator {
    /// Annotations may hold at most this many bytes in all, as in Kubernetes.
    public static let maximumAnnotationsSize = 256 * 1024

    /// Throws the first problem found, with the field path where it is.
    public static func validate(_ resource: Resource) throws(ResourceError) {
        let kind = try kind(named: resource.kind, apiVersion: resource.apiVersion)
        try validateMetadata(resource.metadata, kind: kind)
        switch kind.name {
        case ResourceKind.namespace.name: _ = try NamespaceSpec(resource)
        case ResourceKind.service.name: _ = try ServiceSpec(resource)
        case ResourceKind.secret.name: _ = try SecretSpec(resource)
        case ResourceKind.workload.name: _ = try WorkloadSpec(resource)
        case ResourceKind.trafficSplit.name: _ = try TrafficSplitSpec(resource)
        case ResourceKind.httpRoute.name: _ = try HTTPRouteSpec(resource)
        case ResourceKind.link.name: _ = try LinkSpec(resource)
        case ResourceKind.meshConfig.name: _ = try MeshConfigSpec(resource)
        case ResourceKind.server.name: _ = try ServerSpec(resource)
        case ResourceKind.authorizationPolicy.name: _ = try AuthorizationPolicySpec(resource)
        case ResourceKind.meshTLSAuthentication.name: _ = try MeshTLSAuthenticationSpec(resource)
        case ResourceKind.networkAuthentication.name: _ = try NetworkAuthenticationSpec(resource)
        default: break
        }
    }

    /// The registry entry for a document's `kind`, checking that `apiVersion` is accepted for it.
    public static func kind(named name: String, apiVersion: String) throws(ResourceError) -> ResourceKind {
        guard let kind = ResourceKind.named(name) else {
            var message = "unknown kind \(JSONTextWriter.quoted(name))"
            if let near = ResourceKind.lookup(name) { message += " (did you mean \(near.name)?)" }
            message += "; known kinds: \(ResourceKind.knownKindsList)"
            throw ResourceError(.unknownKind, message, fieldPath: "kind")
        }
        guard kind.apiVersions.contains(apiVersion) else {
            throw ResourceError(
                .unknownAPIVersion,
                "apiVersion \(JSONTextWriter.quoted(apiVersion)) is not accepted for kind \(kind.name); accepted: "
                    + kind.apiVersions.joined(separator: ", "),
                fieldPath: "apiVersion")
        }
        return kind
    }

    /// Name, namespace, labels and annotations.
    static func validateMetadata(_ meta: ObjectMeta, kind: ResourceKind) throws(ResourceError) {
        // Namespaces and Services become DNS labels (`podinfo.test.svc`), so they take the stricter rule.
        let labelNamed = kind == .namespace || kind == .service
        if let problem = labelNamed
            ? ResourceNames.dns1123LabelProblem(meta.name) : ResourceNames.dns1123SubdomainProblem(meta.name)
        {
            throw ResourceError(
                .invalidValue, "invalid name \(JSONTextWriter.quoted(meta.name)): \(problem)", fieldPath: "metadata.name")
        }
        if let namespace = meta.namespace {
            guard kind.namespaced else {
                throw ResourceError(
                    .invalidValue, "\(kind.name) is cluster-scoped and takes no namespace (got \(JSONTextWriter.quoted(namespace)))",
                    fieldPath: "metadata.namespace")
            }
            if let problem = ResourceNames.dns1123LabelProblem(namespace) {
                throw ResourceError(
                    .invalidValue, "invalid namespace \(JSONTextWriter.quoted(namespace)): \(problem)",
                    fieldPath: "metadata.namespace")
            }
        }
        try validateLabels(meta.labels, path: "metadata.labels")
        if let policy = meta.annotations[AccessPolicy.defaultInboundPolicyAnnotation], AccessPolicy.parse(policy) == nil {
            throw ResourceError(
                .invalidValue, "expected one of \(AccessPolicy.acceptedList), got \(JSONTextWriter.quoted(policy))",
                fieldPath: FieldPath.child("metadata.annotations", AccessPolicy.defaultInboundPolicyAnnotation))
        }
        var annotationBytes = 0
        for (key, value) in meta.annotations.sorted(by: { $0.key < $1.key }) {
            if let problem = ResourceNames.qualifiedNameProblem(key) {
                throw ResourceError(
                    .invalidValue, "invalid annotation key \(JSONTextWriter.quoted(key)): \(problem)",
                    fieldPath: FieldPath.child("metadata.annotations", key))
            }
            annotationBytes += key.utf8.count + value.utf8.count
        }
        guard annotationBytes <= maximumAnnotationsSize else {
            throw ResourceError(
                .invalidValue, "annotations hold \(annotationBytes) bytes, over the limit of \(maximumAnnotationsSize)",
                fieldPath: "metadata.annotations")
        }
    }

    /// Label keys must be qualified names and values at most 63 characters of `[A-Za-z0-9_.-]`.
    static func validateLabels(_ labels: [String: String], path: String) throws(ResourceError) {
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            if let problem = ResourceNames.qualifiedNameProblem(key) {
                throw ResourceError(
                    .invalidValue, "invalid label key \(JSONTextWriter.quoted(key)): \(problem)",
                    fieldPath: FieldPath.child(path, key))
            }
            if let problem = ResourceNames.labelValueProblem(value) {
                throw ResourceError(
                    .invalidValue, "invalid label value \(JSONTextWriter.quoted(value)): \(problem)",
                    fieldPath: FieldPath.child(path, key))
            }
        }
    }
}
