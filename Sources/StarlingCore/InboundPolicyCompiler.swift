/// Computes one workload's ``InboundPolicy`` from the resources of its namespace: the Servers
/// whose selector picks it, the AuthorizationPolicies that target them (or their routes, or the
/// namespace), the authentications those require, and the default inbound policy of the
/// workload, its namespace or the cluster. A pure function: the controller runs it per workload
/// on every change, `starling authz` shows its answer, tests call it directly.
public struct InboundPolicyCompiler: Sendable {
    /// Everything in one namespace the computation reads.
    public struct NamespaceResources: Sendable {
        public var namespace: Resource?
        public var servers: [Resource] = []
        public var authorizationPolicies: [Resource] = []
        public var meshTLSAuthentications: [Resource] = []
        public var networkAuthentications: [Resource] = []
        public var httpRoutes: [Resource] = []

        public init(namespace: Resource? = nil) { self.namespace = namespace }
    }

    /// What a proxy says of its workload before (or without) a registration: the labels that
    /// pick Servers and the ports named ports resolve against.
    public struct Standin: Sendable, Hashable {
        public var labels: [String: String]
        public var ports: [WorkloadPort]

        public init(labels: [String: String] = [:], ports: [WorkloadPort] = []) {
            self.labels = labels
            self.ports = ports
        }
    }

    public var clusterName: String
    public var trustDomain: String
    public var clusterDefault: AccessPolicy?
    public var clusterNetworks: [IPNetwork]

    public init(
        clusterName: String, trustDomain: String = "cluster.local", clusterDefault: AccessPolicy? = nil,
        clusterNetworks: [IPNetwork]? = nil
    ) {
        self.clusterName = clusterName
        self.trustDomain = trustDomain
        self.clusterDefault = clusterDefault
        self.clusterNetworks = clusterNetworks ?? InboundPolicy.defaultClusterNetworks
    }

    public init(meshConfig: MeshConfigSpec?) {
        self.init(
            clusterName: meshConfig?.clusterName ?? "", trustDomain: meshConfig?.trustDomain ?? "cluster.local",
            clusterDefault: meshConfig?.defaultInboundPolicy, clusterNetworks: meshConfig?.clusterNetworks)
    }

    /// Something the computation had to leave out, for `starling check` and `starling authz`.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        public var resource: String
        public var message: String
        public var description: String { "\(resource): \(message)" }
    }

    /// The policy of `workload` (a Workload resource), and what could not be used.
    public func compile(workload: Resource, in resources: NamespaceResources) -> (InboundPolicy, [Problem]) {
        let namespace = workload.metadata.namespace ?? "default"
        var problems: [Problem] = []
        var policy = InboundPolicy(
            workload: "\(namespace)/\(workload.metadata.name)", cluster: clusterName, clusterNetworks: clusterNetworks)
        (policy.defaultPolicy, policy.defaultPolicySource) = defaultPolicy(workload: workload, namespace: resources.namespace)

        let spec = try? WorkloadSpec(workload)
        let labels = workload.metadata.labels
        for resource in resources.servers.sorted(by: Self.byAge) {
            guard let server = try? ServerSpec(resource), server.podSelector.matches(labels) else { continue }
            let name = "\(namespace)/\(resource.metadata.name)"
            let ports = Self.ports(of: server.port, workload: spec)
            guard !ports.isEmpty else {
                problems.append(Problem(resource: "Server \(name)", message: "port \(server.port) is not a port of workload \(policy.workload)"))
                continue
            }
            if let taken = policy.servers.first(where: { !Set($0.ports).isDisjoint(with: ports) }) {
                problems.append(
                    Problem(
                        resource: "Server \(name)",
                        message: "port \(server.port) is already covered by Server \(taken.name) (older, or first by name); this one is ignored"))
                continue
            }
            var compiled = InboundPolicy.Server(
                name: name, ports: ports, proxyProtocol: server.proxyProtocol, accessPolicy: server.accessPolicy)
            compiled.authorizations = authorizations(
                targeting: { Self.targetsServer($0, server: resource.metadata.name, namespace: namespace) },
                namespace: namespace, resources: resources, problems: &problems)
            for routeResource in resources.httpRoutes.sorted(by: Self.byAge) {
                guard let route = try? HTTPRouteSpec(routeResource),
                    Self.isRoute(route, ofServer: resource.metadata.name, namespace: namespace)
                else { continue }
                let routeName = routeResource.metadata.name
                compiled.routes.append(
                    InboundPolicy.Route(
                        name: routeName, matches: route.rules.flatMap(\.requestMatches),
                        authorizations: authorizations(
                            targeting: { Self.targetsRoute($0, route: routeName, namespace: namespace) },
                            namespace: namespace, resources: resources, problems: &problems)))
            }
            if compiled.authorizations.isEmpty, compiled.routes.allSatisfy(\.authorizations.isEmpty),
                compiled.accessPolicy == .deny
            {
                problems.append(
                    Problem(resource: "Server \(name)", message: "no AuthorizationPolicy reaches it: every call to port \(server.port) is denied"))
            }
            policy.servers.append(compiled)
        }
        return (policy, problems)
    }

    // MARK: - What targets what (the compiler and `starling check` read it the same way)

    /// An AuthorizationPolicy's target covers every route of Server `server`: the Server itself,
    /// or its namespace.
    public static func targetsServer(_ ref: PolicyReference, server: String, namespace: String) -> Bool {
        (ref.kind == "Server" && ref.name == server && (ref.namespace ?? namespace) == namespace)
            || (ref.kind == "Namespace" && ref.name == namespace)
    }

    /// An AuthorizationPolicy's target is HTTPRoute `route` of `namespace`.
    public static func targetsRoute(_ ref: PolicyReference, route: String, namespace: String) -> Bool {
        ref.kind == "HTTPRoute" && ref.name == route && (ref.namespace ?? namespace) == namespace
    }

    /// The HTTPRoute is a route of Server `server` (one of its parents).
    public static func isRoute(_ route: HTTPRouteSpec, ofServer server: String, namespace: String) -> Bool {
        route.parentRefs.contains { $0.kind == "Server" && $0.name == server && ($0.namespace ?? namespace) == namespace }
    }

    /// The workload's annotation, else its namespace's, else the cluster's, else all-unauthenticated.
    func defaultPolicy(workload: Resource, namespace: Resource?) -> (AccessPolicy, InboundPolicy.Source) {
        let key = AccessPolicy.defaultInboundPolicyAnnotation
        if let text = workload.metadata.annotations[key], let p = AccessPolicy.parse(text) { return (p, .workload) }
        if let text = namespace?.metadata.annotations[key], let p = AccessPolicy.parse(text) { return (p, .namespace) }
        if let clusterDefault { return (clusterDefault, .cluster) }
        return (.allUnauthenticated, .builtIn)
    }

    /// The workload ports a Server's port names: by number, or by the name a workload port
    /// carries; with the application's port when it differs.
    static func ports(of port: ServerSpec.Port, workload: WorkloadSpec?) -> [Int] {
        let declared = workload?.ports ?? []
        switch port {
        case .number(let n):
            let match = declared.first { $0.port == n || $0.appPort == n }
            return Array(Set([n] + [match?.port, match?.appPort].compactMap { $0 })).sorted()
        case .name(let name):
            guard let match = declared.first(where: { $0.name == name }) else { return [] }
            return Array(Set([match.port] + [match.appPort].compactMap { $0 })).sorted()
        }
    }

    private func authorizations(
        targeting matches: (PolicyReference) -> Bool, namespace: String, resources: NamespaceResources,
        problems: inout [Problem]
    ) -> [InboundPolicy.Authorization] {
        var result: [InboundPolicy.Authorization] = []
        for resource in resources.authorizationPolicies.sorted(by: Self.byAge) {
            guard let spec = try? AuthorizationPolicySpec(resource), matches(spec.targetRef) else { continue }
            let name = "\(namespace)/\(resource.metadata.name)"
            guard !spec.requiredAuthenticationRefs.isEmpty else {
                problems.append(Problem(resource: "AuthorizationPolicy \(name)", message: "requires no authentication; it admits nobody"))
                continue
            }
            var requirements: [InboundPolicy.Requirement] = []
            var missing: (text: String, namespace: String)?
            for ref in spec.requiredAuthenticationRefs {
                if let requirement = requirement(ref, namespace: namespace, resources: resources) {
                    requirements.append(requirement)
                } else {
                    missing = ("\(ref.kind) \(ref.namespace ?? namespace)/\(ref.name)", ref.namespace ?? namespace)
                    break
                }
            }
            if let missing {
                let reason =
                    missing.namespace == namespace
                    ? "\(missing.text) does not exist; the policy admits nobody until it does"
                    : "\(missing.text) is in another namespace, which is not supported (authentications are read from the policy's own namespace); the policy admits nobody"
                problems.append(Problem(resource: "AuthorizationPolicy \(name)", message: reason))
                continue
            }
            result.append(InboundPolicy.Authorization(policy: name, requirements: requirements))
        }
        return result
    }

    private func requirement(_ ref: PolicyReference, namespace: String, resources: NamespaceResources) -> InboundPolicy.Requirement? {
        let ns = ref.namespace ?? namespace
        switch ref.kind {
        case "ServiceAccount":
            return InboundPolicy.Requirement(
                name: "ServiceAccount/\(ns)/\(ref.name)",
                identities: [MeshIdentity(namespace: ns, serviceAccount: ref.name, trustDomain: trustDomain).dnsName])
        case "MeshTLSAuthentication":
            // Authentications in another namespace are not visible here: only the workload's own.
            guard ns == namespace,
                let resource = resources.meshTLSAuthentications.first(where: { $0.metadata.name == ref.name }),
                let spec = try? MeshTLSAuthenticationSpec(resource)
            else { return nil }
            var identities = spec.identities
            for identityRef in spec.identityRefs {
                let refNamespace = identityRef.namespace ?? ns
                switch identityRef.kind {
                case "ServiceAccount":
                    identities.append(MeshIdentity(namespace: refNamespace, serviceAccount: identityRef.name, trustDomain: trustDomain).dnsName)
                default:  // Namespace
                    identities.append("*.\(identityRef.name).serviceaccount.identity.starling.\(trustDomain)")
                }
            }
            return InboundPolicy.Requirement(
                name: "MeshTLSAuthentication/\(ns)/\(ref.name)", identities: identities, clusters: spec.clusters)
        default:  // NetworkAuthentication
            guard ns == namespace,
                let resource = resources.networkAuthentications.first(where: { $0.metadata.name == ref.name }),
                let spec = try? NetworkAuthenticationSpec(resource)
            else { return nil }
            return InboundPolicy.Requirement(
                name: "NetworkAuthentication/\(ns)/\(ref.name)", networks: spec.networks, authenticated: false)
        }
    }

    /// Oldest first, then by name: the order Gateway API breaks ties in.
    static func byAge(_ a: Resource, _ b: Resource) -> Bool {
        let ta = a.metadata.creationTimestamp ?? ""
        let tb = b.metadata.creationTimestamp ?? ""
        return ta != tb ? ta < tb : a.metadata.name < b.metadata.name
    }
}
