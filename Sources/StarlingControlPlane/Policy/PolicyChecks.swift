import StarlingAPI
import StarlingCore

/// The authorization checks of `starling check`: a Server that no AuthorizationPolicy reaches
/// (every call to it is denied, usually by mistake), and a MeshTLSAuthentication naming a
/// cluster this one is not linked to (its callers can never arrive).
struct PolicyChecks {
    let snapshot: DestinationIndex.Snapshot
    /// The clusters this one links to (Link resources' target cluster names).
    let linkedClusters: Set<String>

    func run() -> [Starling_V1_CheckResult] {
        var warnings: [Starling_V1_CheckResult] = []
        let localCluster = snapshot.policyCompiler.clusterName
        var servers = 0
        for namespace in snapshot.policy.keys.sorted() {
            let resources = snapshot.policyResources(namespace: namespace)
            let policies = resources.authorizationPolicies.compactMap { try? AuthorizationPolicySpec($0) }
            let routes = resources.httpRoutes.compactMap { r in (try? HTTPRouteSpec(r)).map { (name: r.metadata.name, spec: $0) } }
            for server in resources.servers.sorted(by: { $0.metadata.name < $1.metadata.name }) {
                servers += 1
                guard let spec = try? ServerSpec(server), spec.accessPolicy == .deny else { continue }
                let name = server.metadata.name
                let ownRoutes = routes.filter { InboundPolicyCompiler.isRoute($0.spec, ofServer: name, namespace: namespace) }
                let reached = policies.contains { p in
                    InboundPolicyCompiler.targetsServer(p.targetRef, server: name, namespace: namespace)
                        || ownRoutes.contains { InboundPolicyCompiler.targetsRoute(p.targetRef, route: $0.name, namespace: namespace) }
                }
                if !reached {
                    warnings.append(
                        .warning(
                            "Server \(namespace)/\(name): no AuthorizationPolicy reaches it, so every call to port \(spec.port) is denied",
                            "policy-unreached-server",
                            hint: "apply an AuthorizationPolicy with targetRef kind Server name \(name), or set accessPolicy: audit while you write one"))
                }
            }
            for authn in resources.meshTLSAuthentications.sorted(by: { $0.metadata.name < $1.metadata.name }) {
                guard let spec = try? MeshTLSAuthenticationSpec(authn) else { continue }
                for cluster in spec.clusters where cluster != localCluster && !linkedClusters.contains(cluster) {
                    warnings.append(
                        .warning(
                            "MeshTLSAuthentication \(namespace)/\(authn.metadata.name) names cluster \(cluster), which this cluster is not linked to",
                            "policy-unlinked-cluster",
                            hint: "link it (starling multicluster link --cluster-name \(cluster) | starling apply -f -) or correct the name"))
                }
            }
        }
        if warnings.isEmpty {
            return [
                .ok(
                    servers == 0
                        ? "authorization policy: no Servers (every port follows the default inbound policy)"
                        : "authorization policy: \(servers) Server\(servers == 1 ? "" : "s"), each reached by a policy", "policy")
            ]
        }
        return warnings
    }
}
