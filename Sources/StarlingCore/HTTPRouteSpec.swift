/// A Gateway API route parent: in a mesh, the Service whose traffic the route applies to.
public struct HTTPRouteParentRef: Sendable, Hashable {
    public var name: String
    public var namespace: String?
    /// The referent's kind, `Service` in a mesh (nil when not given).
    public var kind: String?
    public var port: Int?

    public init(name: String, namespace: String? = nil, kind: String? = nil, port: Int? = nil) {
        self.name = name
        self.namespace = namespace
        self.kind = kind
        self.port = port
    }

    /// True when the parent is a Service (the kind is Service or not given): a route for
    /// traffic. A parent of kind Server makes a route for authorization only.
    public var isService: Bool { kind == nil || kind == "Service" }
}

/// A weighted backend of an HTTPRoute rule.
public struct HTTPBackendRef: Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var port: Int?
    /// Relative weight, 0–1,000,000 (default 1).
    public var weight: Int

    public init(name: String, namespace: String? = nil, port: Int? = nil, weight: Int = 1) {
        self.name = name
        self.namespace = namespace
        self.port = port
        self.weight = weight
    }
}

/// One rule of an HTTPRoute: its weighted backends and its matches. `filters` and the rest
/// stay verbatim in the resource.
public struct HTTPRouteRule: Sendable, Hashable {
    public var backendRefs: [HTTPBackendRef]
    /// The rule's `matches`, verbatim.
    public var matches: [JSONValue]
    /// The same, read: what the proxies evaluate per request (per-route metrics). A rule without
    /// matches matches every request (`PathPrefix /`).
    public var requestMatches: [HTTPRouteMatch]

    public init(backendRefs: [HTTPBackendRef], matches: [JSONValue] = [], requestMatches: [HTTPRouteMatch]? = nil) {
        self.backendRefs = backendRefs
        self.matches = matches
        self.requestMatches = requestMatches ?? [HTTPRouteMatch()]
    }
}

/// The spec of a Gateway API `HTTPRoute`, as far as weighted traffic splitting and per-route
/// metrics need it.
public struct HTTPRouteSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .httpRoute }

    public var parentRefs: [HTTPRouteParentRef]
    public var rules: [HTTPRouteRule]

    public init(parentRefs: [HTTPRouteParentRef], rules: [HTTPRouteRule]) {
        self.parentRefs = parentRefs
        self.rules = rules
    }

    /// Gateway API's upper bound for a backend weight.
    public static let maximumWeight = 1_000_000

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        guard let parentReaders = try spec.objects("parentRefs"), !parentReaders.isEmpty else {
            throw ResourceError(
                .missingField, "an HTTPRoute needs at least one parentRef (the Service it routes)",
                fieldPath: spec.at("parentRefs"))
        }
        var parents: [HTTPRouteParentRef] = []
        for reader in parentReaders {
            parents.append(
                HTTPRouteParentRef(
                    name: try Self.name(reader), namespace: try reader.string("namespace"), kind: try reader.string("kind"),
                    port: try reader.port("port")))
        }
        var rules: [HTTPRouteRule] = []
        for ruleReader in try spec.objects("rules") ?? [] {
            var refs: [HTTPBackendRef] = []
            for reader in try ruleReader.objects("backendRefs") ?? [] {
                let weight = try reader.int("weight") ?? 1
                guard (0...Int64(Self.maximumWeight)).contains(weight) else {
                    throw reader.invalid("weight", "expected an integer from 0 to \(Self.maximumWeight), got \(weight)")
                }
                refs.append(
                    HTTPBackendRef(
                        name: try Self.name(reader), namespace: try reader.string("namespace"), port: try reader.port("port"),
                        weight: Int(weight)))
            }
            var requestMatches: [HTTPRouteMatch] = []
            for matchReader in try ruleReader.objects("matches") ?? [] {
                requestMatches.append(try HTTPRouteMatch(matchReader))
            }
            rules.append(
                HTTPRouteRule(
                    backendRefs: refs, matches: try ruleReader.array("matches") ?? [],
                    requestMatches: requestMatches.isEmpty ? nil : requestMatches))
        }
        self.init(parentRefs: parents, rules: rules)
    }

    private static func name(_ reader: FieldReader) throws(ResourceError) -> String {
        let name = try reader.requiredString("name")
        if let problem = ResourceNames.dns1123SubdomainProblem(name) {
            throw reader.invalid("name", "invalid name \(JSONTextWriter.quoted(name)): \(problem)")
        }
        return name
    }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["parentRefs"] = .array(
            parentRefs.map { p in
                var o = JSONObject()
                if let kind = p.kind { o["kind"] = .string(kind) }
                o["name"] = .string(p.name)
                if let ns = p.namespace { o["namespace"] = .string(ns) }
                if let port = p.port { o["port"] = .int(Int64(port)) }
                return .object(o)
            })
        spec["rules"] = .array(
            rules.map { rule in
                var r = JSONObject()
                if !rule.matches.isEmpty { r["matches"] = .array(rule.matches) }
                r["backendRefs"] = .array(
                    rule.backendRefs.map { b in
                        var o = JSONObject()
                        o["name"] = .string(b.name)
                        if let ns = b.namespace { o["namespace"] = .string(ns) }
                        if let port = b.port { o["port"] = .int(Int64(port)) }
                        o["weight"] = .int(Int64(b.weight))
                        return .object(o)
                    })
                return .object(r)
            })
        return JSONObject([("spec", .object(spec))])
    }
}
