/// The group of Starling's authorization kinds (Linkerd's is `policy.linkerd.io`).
public enum PolicyGroup {
    public static let name = "policy.starling.io"
}

/// What a proxy does with a call that no authorization admits: the default inbound policy of a
/// cluster, namespace or workload, and a Server's `accessPolicy`.
public enum AccessPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every caller, meshed or not (the default when nothing is configured).
    case allUnauthenticated = "all-unauthenticated"
    /// Every caller with a verified mesh identity.
    case allAuthenticated = "all-authenticated"
    /// Callers with a verified identity from this cluster's networks, or passed on by a linked
    /// cluster's gateway.
    case clusterAuthenticated = "cluster-authenticated"
    /// Nobody.
    case deny
    /// Everybody, but each call is logged and counted as one that would be denied.
    case audit

    /// Reads `value` (e.g. `all-authenticated`); the error names the accepted values.
    public static func parse(_ value: String) -> AccessPolicy? { AccessPolicy(rawValue: value) }

    public static var acceptedList: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The annotation that sets a namespace's or a workload's default inbound policy.
    public static let defaultInboundPolicyAnnotation = "config.starling.io/default-inbound-policy"
}

/// A reference to another resource by group, kind, name and (optional) namespace.
public struct PolicyReference: Sendable, Hashable {
    public var group: String?
    public var kind: String
    public var name: String
    public var namespace: String?

    public init(group: String? = nil, kind: String, name: String, namespace: String? = nil) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }

    /// Reads `{group, kind, name, namespace}` and checks `kind` against `kinds` (kind → the
    /// group it must have when one is given).
    static func read(_ reader: FieldReader, kinds: [String: String]) throws(ResourceError) -> PolicyReference {
        let kind = try reader.requiredString("kind")
        guard let group = kinds[kind] else {
            throw reader.invalid(
                "kind", "\(JSONTextWriter.quoted(kind)) cannot be referenced here; expected \(kinds.keys.sorted().joined(separator: " or "))")
        }
        let given = try reader.string("group")
        if let given, !given.isEmpty || !group.isEmpty, given != group {
            throw reader.invalid(
                "group", "kind \(kind) belongs to group \(JSONTextWriter.quoted(group)), got \(JSONTextWriter.quoted(given))")
        }
        let name = try reader.requiredString("name")
        let namePath = reader.at("name")
        let problem = kind == "Namespace" ? ResourceNames.dns1123LabelProblem(name) : ResourceNames.dns1123SubdomainProblem(name)
        if let problem {
            throw ResourceError(.invalidValue, "invalid name \(JSONTextWriter.quoted(name)): \(problem)", fieldPath: namePath)
        }
        let namespace = try reader.string("namespace")
        if let namespace, let problem = ResourceNames.dns1123LabelProblem(namespace) {
            throw reader.invalid("namespace", "invalid namespace \(JSONTextWriter.quoted(namespace)): \(problem)")
        }
        return PolicyReference(group: given, kind: kind, name: name, namespace: namespace)
    }

    var json: JSONValue {
        var o = JSONObject()
        if let group { o["group"] = .string(group) }
        o["kind"] = .string(kind)
        o["name"] = .string(name)
        if let namespace { o["namespace"] = .string(namespace) }
        return .object(o)
    }
}

/// The spec of a `Server` (`policy.starling.io/v1beta1`, after Linkerd's): one port of the
/// workloads a selector picks, the protocol it speaks, and what happens to calls that no
/// authorization admits (`accessPolicy`, default `deny`).
public struct ServerSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .server }

    /// A port by number or by the name a Workload gives it.
    public enum Port: Sendable, Hashable, CustomStringConvertible {
        case number(Int)
        case name(String)

        public var description: String {
            switch self {
            case .number(let n): "\(n)"
            case .name(let s): s
            }
        }
    }

    public static let protocols = ["unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque", "TLS"]

    public var podSelector: LabelSelector
    public var port: Port
    public var proxyProtocol: String
    public var accessPolicy: AccessPolicy

    public init(podSelector: LabelSelector, port: Port, proxyProtocol: String = "unknown", accessPolicy: AccessPolicy = .deny) {
        self.podSelector = podSelector
        self.port = port
        self.proxyProtocol = proxyProtocol
        self.accessPolicy = accessPolicy
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        try spec.refuseUnknown(["podSelector", "port", "proxyProtocol", "accessPolicy"])
        guard let selectorReader = try spec.object("podSelector") else {
            throw ResourceError(.missingField, "a Server needs a podSelector (the workloads it covers)", fieldPath: spec.at("podSelector"))
        }
        let selector = try LabelSelector(reading: selectorReader)
        let port: Port
        switch spec.value("port") {
        case .int(let n)?:
            guard (1...65535).contains(n) else { throw spec.invalid("port", "expected a port from 1 to 65535, got \(n)") }
            port = .number(Int(n))
        case .string(let s)?:
            if let problem = ResourceNames.dns1123LabelProblem(s) {
                throw spec.invalid("port", "invalid port name \(JSONTextWriter.quoted(s)): \(problem)")
            }
            port = .name(s)
        case nil, .null?:
            throw ResourceError(.missingField, "a Server needs a port (a number, or a port name of the workload)", fieldPath: spec.at("port"))
        case let other?:
            throw spec.invalid("port", "expected a port number or name, got \(FieldReader.describe(other))")
        }
        let proto = try spec.string("proxyProtocol") ?? "unknown"
        guard Self.protocols.contains(proto) else {
            throw spec.invalid("proxyProtocol", "expected one of \(Self.protocols.joined(separator: ", ")), got \(JSONTextWriter.quoted(proto))")
        }
        var access = AccessPolicy.deny
        if let text = try spec.string("accessPolicy") {
            guard let parsed = AccessPolicy.parse(text) else {
                throw spec.invalid("accessPolicy", "expected one of \(AccessPolicy.acceptedList), got \(JSONTextWriter.quoted(text))")
            }
            access = parsed
        }
        self.init(podSelector: selector, port: port, proxyProtocol: proto, accessPolicy: access)
    }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["podSelector"] = .object(podSelector.kubernetesJSON)
        switch port {
        case .number(let n): spec["port"] = .int(Int64(n))
        case .name(let s): spec["port"] = .string(s)
        }
        spec["proxyProtocol"] = .string(proxyProtocol)
        spec["accessPolicy"] = .string(accessPolicy.rawValue)
        return JSONObject([("spec", .object(spec))])
    }
}

/// The spec of an `AuthorizationPolicy`: the calls to a target (a Server, an HTTPRoute whose
/// parent is a Server, or every Server of a namespace) that are admitted when the caller meets
/// every one of `requiredAuthenticationRefs`.
public struct AuthorizationPolicySpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .authorizationPolicy }

    public var targetRef: PolicyReference
    public var requiredAuthenticationRefs: [PolicyReference]

    public init(targetRef: PolicyReference, requiredAuthenticationRefs: [PolicyReference]) {
        self.targetRef = targetRef
        self.requiredAuthenticationRefs = requiredAuthenticationRefs
    }

    static let targetKinds = ["Server": PolicyGroup.name, "HTTPRoute": "gateway.networking.k8s.io", "Namespace": ""]
    static let authenticationKinds = [
        "MeshTLSAuthentication": PolicyGroup.name, "NetworkAuthentication": PolicyGroup.name, "ServiceAccount": "",
    ]

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        try spec.refuseUnknown(["targetRef", "requiredAuthenticationRefs"])
        let target = try PolicyReference.read(try spec.requiredObject("targetRef"), kinds: Self.targetKinds)
        let refs = try spec.objects("requiredAuthenticationRefs") ?? []
        var authentications: [PolicyReference] = []
        for reader in refs {
            authentications.append(try PolicyReference.read(reader, kinds: Self.authenticationKinds))
        }
        self.init(targetRef: target, requiredAuthenticationRefs: authentications)
    }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["targetRef"] = targetRef.json
        spec["requiredAuthenticationRefs"] = .array(requiredAuthenticationRefs.map(\.json))
        return JSONObject([("spec", .object(spec))])
    }
}

/// The spec of a `MeshTLSAuthentication`: callers by verified mesh identity — exact names, `*`
/// for any, `*.SUFFIX` for a domain of names, or service accounts and namespaces by reference —
/// and, Starling's addition, the clusters they may call from.
public struct MeshTLSAuthenticationSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .meshTLSAuthentication }

    public var identities: [String]
    public var identityRefs: [PolicyReference]
    /// Empty: any cluster.
    public var clusters: [String]

    public init(identities: [String] = [], identityRefs: [PolicyReference] = [], clusters: [String] = []) {
        self.identities = identities
        self.identityRefs = identityRefs
        self.clusters = clusters
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        try spec.refuseUnknown(["identities", "identityRefs", "clusters"])
        let identities = try spec.strings("identities") ?? []
        for (i, pattern) in identities.enumerated() {
            if let problem = IdentityPattern.problem(pattern) {
                throw ResourceError(
                    .invalidValue, "invalid identity \(JSONTextWriter.quoted(pattern)): \(problem)",
                    fieldPath: FieldPath.index(spec.at("identities"), i))
            }
        }
        var refs: [PolicyReference] = []
        for reader in try spec.objects("identityRefs") ?? [] {
            refs.append(try PolicyReference.read(reader, kinds: ["ServiceAccount": "", "Namespace": ""]))
        }
        guard !identities.isEmpty || !refs.isEmpty else {
            throw ResourceError(
                .missingField, "a MeshTLSAuthentication needs identities or identityRefs (use [\"*\"] for any meshed caller)",
                fieldPath: spec.at("identities"))
        }
        let clusters = try spec.strings("clusters") ?? []
        for (i, cluster) in clusters.enumerated() {
            if let problem = ResourceNames.dns1123LabelProblem(cluster) {
                throw ResourceError(
                    .invalidValue, "invalid cluster name \(JSONTextWriter.quoted(cluster)): \(problem)",
                    fieldPath: FieldPath.index(spec.at("clusters"), i))
            }
        }
        self.init(identities: identities, identityRefs: refs, clusters: clusters)
    }

    public var body: JSONObject {
        var spec = JSONObject()
        if !identities.isEmpty { spec["identities"] = .array(identities.map { .string($0) }) }
        if !identityRefs.isEmpty { spec["identityRefs"] = .array(identityRefs.map(\.json)) }
        if !clusters.isEmpty { spec["clusters"] = .array(clusters.map { .string($0) }) }
        return JSONObject([("spec", .object(spec))])
    }
}

/// The spec of a `NetworkAuthentication`: callers by the address they connect from.
public struct NetworkAuthenticationSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .networkAuthentication }

    public var networks: [IPNetworkRule]

    public init(networks: [IPNetworkRule]) { self.networks = networks }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        try spec.refuseUnknown(["networks"])
        guard let readers = try spec.objects("networks"), !readers.isEmpty else {
            throw ResourceError(.missingField, "a NetworkAuthentication needs at least one network (cidr)", fieldPath: spec.at("networks"))
        }
        var networks: [IPNetworkRule] = []
        for reader in readers {
            let text = try reader.requiredString("cidr")
            guard let cidr = IPNetwork(text) else {
                throw reader.invalid("cidr", "expected a CIDR such as 10.0.0.0/8 or fd00::/8, got \(JSONTextWriter.quoted(text))")
            }
            var except: [IPNetwork] = []
            for (i, e) in (try reader.strings("except") ?? []).enumerated() {
                guard let parsed = IPNetwork(e) else {
                    throw ResourceError(
                        .invalidValue, "expected a CIDR, got \(JSONTextWriter.quoted(e))", fieldPath: FieldPath.index(reader.at("except"), i))
                }
                except.append(parsed)
            }
            networks.append(IPNetworkRule(cidr: cidr, except: except))
        }
        self.init(networks: networks)
    }

    public var body: JSONObject {
        let items: [JSONValue] = networks.map { rule in
            var o = JSONObject()
            o["cidr"] = .string(rule.cidr.description)
            if !rule.except.isEmpty { o["except"] = .array(rule.except.map { .string($0.description) }) }
            return .object(o)
        }
        return JSONObject([("spec", .object(JSONObject([("networks", .array(items))])))])
    }
}
