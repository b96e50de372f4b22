/// A pattern of mesh identities in a MeshTLSAuthentication: `*` (any verified identity),
/// `*.SUFFIX` (any identity ending in `.SUFFIX`), or one identity exactly.
public enum IdentityPattern: Sendable, Hashable {
    case any
    case suffix(String)
    case exact(String)

    public init?(_ text: String) {
        guard Self.problem(text) == nil else { return nil }
        if text == "*" {
            self = .any
        } else if text.hasPrefix("*.") {
            self = .suffix(String(text.dropFirst()))  // keeps the dot: ".ns.serviceaccount…"
        } else {
            self = .exact(text)
        }
    }

    /// Why `text` is not a pattern; nil when it is one.
    public static func problem(_ text: String) -> String? {
        if text == "*" { return nil }
        let name = text.hasPrefix("*.") ? String(text.dropFirst(2)) : text
        if name.contains("*") { return "a wildcard may only stand alone (\"*\") or as the first label (\"*.ns.serviceaccount.identity.starling.cluster.local\")" }
        if let problem = ResourceNames.dns1123SubdomainProblem(name) { return problem }
        return nil
    }
}

/// The inbound authorization of one workload, as the controller computes it from Servers,
/// AuthorizationPolicies, authentications, HTTPRoutes and the default inbound policy, and as its
/// proxy enforces it. `starling authz -o json` prints this document; proxies receive it whole on
/// the Policy stream.
public struct InboundPolicy: Sendable, Hashable, Codable {
    /// Where the default policy came from.
    public enum Source: String, Sendable, Hashable, Codable {
        case workload, namespace, cluster
        case builtIn = "built-in"
    }

    /// `NAMESPACE/NAME` of the workload.
    public var workload: String
    /// This cluster's name: the caller's cluster unless a gateway names another.
    public var cluster: String
    /// For ports no Server covers.
    public var defaultPolicy: AccessPolicy
    public var defaultPolicySource: Source
    /// The networks `cluster-authenticated` admits callers from.
    public var clusterNetworks: [IPNetwork]
    public var servers: [Server]

    public init(
        workload: String, cluster: String, defaultPolicy: AccessPolicy = .allUnauthenticated,
        defaultPolicySource: Source = .builtIn, clusterNetworks: [IPNetwork] = InboundPolicy.defaultClusterNetworks,
        servers: [Server] = []
    ) {
        self.workload = workload
        self.cluster = cluster
        self.defaultPolicy = defaultPolicy
        self.defaultPolicySource = defaultPolicySource
        self.clusterNetworks = clusterNetworks
        self.servers = servers
    }

    /// Linkerd's default cluster networks, plus loopback (local clusters run there).
    public static let defaultClusterNetworks: [IPNetwork] = [
        "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fd00::/8", "::1/128",
    ].compactMap(IPNetwork.init)

    /// One Server that covers a port of the workload.
    public struct Server: Sendable, Hashable, Codable {
        /// `NAMESPACE/NAME`.
        public var name: String
        /// The workload ports it covers (the port and, when it differs, the application's port).
        public var ports: [Int]
        public var proxyProtocol: String
        public var accessPolicy: AccessPolicy
        /// Policies targeting the Server or its namespace: they admit calls to every route.
        public var authorizations: [Authorization]
        /// HTTPRoutes whose parent is the Server. When there are any, a request that matches none
        /// is denied.
        public var routes: [Route]

        public init(
            name: String, ports: [Int], proxyProtocol: String = "unknown", accessPolicy: AccessPolicy = .deny,
            authorizations: [Authorization] = [], routes: [Route] = []
        ) {
            self.name = name
            self.ports = ports
            self.proxyProtocol = proxyProtocol
            self.accessPolicy = accessPolicy
            self.authorizations = authorizations
            self.routes = routes
        }
    }

    /// One HTTPRoute of a Server.
    public struct Route: Sendable, Hashable, Codable {
        public var name: String
        public var matches: [HTTPRouteMatch]
        public var authorizations: [Authorization]

        public init(name: String, matches: [HTTPRouteMatch] = [HTTPRouteMatch()], authorizations: [Authorization] = []) {
            self.name = name
            self.matches = matches
            self.authorizations = authorizations
        }
    }

    /// One AuthorizationPolicy: the caller must meet every requirement.
    public struct Authorization: Sendable, Hashable, Codable {
        /// `NAMESPACE/NAME` of the AuthorizationPolicy.
        public var policy: String
        public var requirements: [Requirement]

        public init(policy: String, requirements: [Requirement]) {
            self.policy = policy
            self.requirements = requirements
        }
    }

    /// One authentication an AuthorizationPolicy requires.
    public struct Requirement: Sendable, Hashable, Codable {
        /// `MeshTLSAuthentication/NS/NAME`, `ServiceAccount/NS/NAME`, `NetworkAuthentication/NS/NAME`.
        public var name: String
        /// Identity patterns (text); empty: no identity condition. A ServiceAccount is its one
        /// identity; a MeshTLSAuthentication always names at least one.
        public var identities: [String]
        /// Caller clusters; empty: any.
        public var clusters: [String]
        /// Caller networks; empty: no network condition.
        public var networks: [IPNetworkRule]
        /// True when the caller must have a verified identity (mesh TLS kinds).
        public var authenticated: Bool

        public init(
            name: String, identities: [String] = [], clusters: [String] = [], networks: [IPNetworkRule] = [],
            authenticated: Bool = true
        ) {
            self.name = name
            self.identities = identities
            self.clusters = clusters
            self.networks = networks
            self.authenticated = authenticated
        }
    }
}

/// Who is calling, as the inbound proxy verified it.
public struct PolicyCaller: Sendable, Hashable {
    /// The verified identity (DNS form); nil for a caller without one.
    public var identity: String?
    /// The caller's cluster: this cluster, or the one a gateway named.
    public var cluster: String?
    /// The address the connection came from (4 or 16 bytes); nil when unknown.
    public var address: [UInt8]?
    /// True when a linked cluster's gateway passed the caller on (its identity and cluster are
    /// the gateway's word).
    public var viaGateway: Bool

    public init(identity: String?, cluster: String?, address: [UInt8]?, viaGateway: Bool = false) {
        self.identity = identity
        self.cluster = cluster
        self.address = address
        self.viaGateway = viaGateway
    }
}

/// The outcome of one authorization, with the labels it is counted under.
public struct AuthorizationDecision: Sendable, Hashable {
    /// Whether the call goes through (true in audit mode even when it would be denied).
    public var allowed: Bool
    /// Audit mode let through a call it would have denied.
    public var wouldDeny: Bool
    /// `NAMESPACE/NAME` of the Server, or `default:POLICY` for a port no Server covers.
    public var server: String
    /// The HTTPRoute that matched; "" when none.
    public var route: String
    /// The AuthorizationPolicy that admitted the call, or the access policy that decided it
    /// (`default:deny`, `server:audit`, …).
    public var policy: String
    /// Why, in a sentence a user reads in the `starling-error` header and the log.
    public var reason: String
}

/// An ``InboundPolicy`` prepared for matching: servers by port, identity sets, parsed patterns.
/// Built once per policy version; ``decide(port:caller:request:)`` is what runs per call.
public final class InboundPolicyEvaluator: Sendable {
    public let policy: InboundPolicy
    private let serversByPort: [Int: CompiledServer]
    /// `default:POLICY`, the server and policy label of a port no Server covers (spelled once:
    /// it labels every such request).
    private let defaultName: String

    /// A request's method, path and header lookup, for route matching.
    public struct Request {
        public var method: String
        public var path: Substring
        public var header: (String) -> String?

        public init(method: String, path: Substring, header: @escaping (String) -> String?) {
            self.method = method
            self.path = path
            self.header = header
        }
    }

    public init(_ policy: InboundPolicy) {
        self.policy = policy
        var byPort: [Int: CompiledServer] = [:]
        for server in policy.servers {
            let compiled = CompiledServer(server)
            for port in server.ports where byPort[port] == nil { byPort[port] = compiled }
        }
        serversByPort = byPort
        defaultName = "default:\(policy.defaultPolicy.rawValue)"
    }

    static let httpProtocols: Set<String> = ["HTTP/1", "HTTP/2", "gRPC"]

    /// The Server covering `port`, if any.
    public func server(forPort port: Int) -> InboundPolicy.Server? { serversByPort[port]?.server }

    /// Whether `caller` may make this call to `port` (`request` nil for a TCP connection).
    public func decide(port: Int, caller: PolicyCaller, request: Request?) -> AuthorizationDecision {
        var caller = caller
        // A caller no gateway vouched for is from this cluster.
        if caller.cluster == nil, !caller.viaGateway, !policy.cluster.isEmpty { caller.cluster = policy.cluster }
        guard let server = serversByPort[port] else {
            return access(
                policy.defaultPolicy, caller: caller, server: defaultName, route: "", label: defaultName,
                denial: "the default inbound policy is \(policy.defaultPolicy.rawValue)")
        }
        var routeName = ""
        var routeAuthorizations: [CompiledAuthorization] = []
        // A Server that speaks HTTP, or has routes, is decided per request: an opaque
        // connection would carry requests no route was matched against.
        if request == nil, !server.routes.isEmpty || Self.httpProtocols.contains(server.server.proxyProtocol) {
            let audit = server.server.accessPolicy == .audit
            return AuthorizationDecision(
                allowed: audit, wouldDeny: audit, server: server.server.name, route: "", policy: audit ? "server:audit" : "",
                reason: "server \(server.server.name) speaks \(server.server.proxyProtocol == "unknown" ? "HTTP (it has routes)" : server.server.proxyProtocol); an opaque connection to it is refused")
        }
        if !server.routes.isEmpty, let request {
            guard let route = server.route(for: request) else {
                return AuthorizationDecision(
                    allowed: false, wouldDeny: false, server: server.server.name, route: "", policy: "",
                    reason: "no HTTPRoute of server \(server.server.name) matches \(request.method) \(request.path.prefix(200))")
            }
            routeName = route.name
            routeAuthorizations = route.authorizations
        }
        for authorization in routeAuthorizations where authorization.admits(caller) {
            return AuthorizationDecision(
                allowed: true, wouldDeny: false, server: server.server.name, route: routeName, policy: authorization.policy,
                reason: "")
        }
        for authorization in server.authorizations where authorization.admits(caller) {
            return AuthorizationDecision(
                allowed: true, wouldDeny: false, server: server.server.name, route: routeName, policy: authorization.policy,
                reason: "")
        }
        let access = server.server.accessPolicy
        return self.access(
            access, caller: caller, server: server.server.name, route: routeName, label: server.accessLabel,
            denial: "no authorization of server \(server.server.name)\(routeName.isEmpty ? "" : " route \(routeName)") admits \(Self.describe(caller))")
    }

    private static func describe(_ caller: PolicyCaller) -> String {
        caller.identity.map { "\($0)\(caller.cluster.map { " of cluster \($0)" } ?? "")" } ?? "an unauthenticated caller"
    }

    /// `denial` is spelled only for a call that is denied or audited: this runs on every request.
    private func access(
        _ access: AccessPolicy, caller: PolicyCaller, server: String, route: String, label: String,
        denial: @autoclosure () -> String
    ) -> AuthorizationDecision {
        let allowed: Bool
        switch access {
        case .allUnauthenticated, .audit: allowed = true
        case .allAuthenticated: allowed = caller.identity != nil
        case .clusterAuthenticated:
            allowed =
                caller.identity != nil
                && (caller.viaGateway || caller.address.map { a in policy.clusterNetworks.contains { $0.contains(bytes: a) } } ?? false)
        case .deny: allowed = false
        }
        let wouldDeny = access == .audit
        return AuthorizationDecision(
            allowed: allowed, wouldDeny: wouldDeny, server: server, route: route, policy: label,
            reason: allowed && !wouldDeny ? "" : denial())
    }
}

private struct CompiledServer: Sendable {
    let server: InboundPolicy.Server
    /// `server:ACCESS_POLICY`, the policy label of calls no authorization admits.
    let accessLabel: String
    let authorizations: [CompiledAuthorization]
    /// Every route's matches, most specific first.
    let matchOrder: [(match: HTTPRouteMatch, route: CompiledRoute)]
    var routes: [InboundPolicy.Route] { server.routes }

    init(_ server: InboundPolicy.Server) {
        self.server = server
        self.accessLabel = "server:\(server.accessPolicy.rawValue)"
        self.authorizations = server.authorizations.map(CompiledAuthorization.init)
        var order: [(match: HTTPRouteMatch, route: CompiledRoute)] = []
        for route in server.routes {
            let compiled = CompiledRoute(name: route.name, authorizations: route.authorizations.map(CompiledAuthorization.init))
            for match in route.matches { order.append((match, compiled)) }
        }
        // Stable: among equally specific matches the route listed first (oldest, by name) wins.
        self.matchOrder = order.enumerated().sorted { a, b in
            if HTTPRouteMatch.isMoreSpecific(a.element.match, than: b.element.match) { return true }
            if HTTPRouteMatch.isMoreSpecific(b.element.match, than: a.element.match) { return false }
            return a.offset < b.offset
        }.map(\.element)
    }

    func route(for request: InboundPolicyEvaluator.Request) -> CompiledRoute? {
        matchOrder.first { $0.match.matches(method: request.method, path: request.path, header: request.header) }?.route
    }
}

private struct CompiledRoute: Sendable {
    let name: String
    let authorizations: [CompiledAuthorization]
}

private struct CompiledAuthorization: Sendable {
    let policy: String
    let requirements: [CompiledRequirement]

    init(_ a: InboundPolicy.Authorization) {
        policy = a.policy
        requirements = a.requirements.map(CompiledRequirement.init)
    }

    /// An authorization with no requirement admits nobody (Linkerd refuses such a policy; the
    /// controller leaves it out, and this keeps it harmless if one arrives).
    func admits(_ caller: PolicyCaller) -> Bool {
        !requirements.isEmpty && requirements.allSatisfy { $0.admits(caller) }
    }
}

private struct CompiledRequirement: Sendable {
    let authenticated: Bool
    let anyIdentity: Bool
    let exact: Set<String>
    let suffixes: [String]
    let clusters: Set<String>
    let networks: [IPNetworkRule]

    init(_ r: InboundPolicy.Requirement) {
        authenticated = r.authenticated
        var any = false
        var exact = Set<String>()
        var suffixes: [String] = []
        for text in r.identities {
            switch IdentityPattern(text) {
            case .any?: any = true
            case .suffix(let s)?: suffixes.append(s)
            case .exact(let s)?: exact.insert(s)
            case nil: break  // the controller validated it; an unreadable pattern admits nobody
            }
        }
        anyIdentity = any
        self.exact = exact
        self.suffixes = suffixes
        clusters = Set(r.clusters)
        networks = r.networks
    }

    func admits(_ caller: PolicyCaller) -> Bool {
        if authenticated {
            guard let identity = caller.identity else { return false }
            if !anyIdentity, !exact.contains(identity), !suffixes.contains(where: { identity.hasSuffix($0) }) { return false }
        }
        if !clusters.isEmpty {
            guard let cluster = caller.cluster, clusters.contains(cluster) else { return false }
        }
        if !networks.isEmpty {
            guard let address = caller.address, networks.contains(where: { $0.contains(bytes: address) }) else { return false }
        }
        return true
    }
}
