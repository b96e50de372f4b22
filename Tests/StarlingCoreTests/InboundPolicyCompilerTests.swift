import Foundation
import StarlingCore
import Testing

/// From resources to one workload's inbound policy, and the kinds' validation with field paths.
struct InboundPolicyCompilerTests {
    func resource(_ yaml: String) throws -> Resource {
        let resources = try ResourceDecoder.decode(yaml, source: "test.yaml")
        let r = try #require(resources.first)
        try ResourceValidator.validate(r)
        return r
    }

    var workload: Resource {
        get throws {
            try resource("""
                apiVersion: starling.io/v1alpha1
                kind: Workload
                metadata: {name: podinfo-1, namespace: test, labels: {app: podinfo}}
                spec:
                  address: 127.0.0.10
                  ports: [{name: http, port: 4143, appPort: 9898}]
                """)
        }
    }

    func namespaceResources(_ documents: [String], namespace: Resource? = nil) throws -> InboundPolicyCompiler.NamespaceResources {
        var r = InboundPolicyCompiler.NamespaceResources(namespace: namespace)
        for text in documents {
            let res = try resource(text)
            switch res.kind {
            case "Server": r.servers.append(res)
            case "AuthorizationPolicy": r.authorizationPolicies.append(res)
            case "MeshTLSAuthentication": r.meshTLSAuthentications.append(res)
            case "NetworkAuthentication": r.networkAuthentications.append(res)
            case "HTTPRoute": r.httpRoutes.append(res)
            default: Issue.record("unexpected kind \(res.kind)")
            }
        }
        return r
    }

    static let server = """
        apiVersion: policy.starling.io/v1beta1
        kind: Server
        metadata: {name: podinfo-http, namespace: test}
        spec: {podSelector: {matchLabels: {app: podinfo}}, port: http, proxyProtocol: HTTP/1}
        """
    static let frontendOnly = """
        apiVersion: policy.starling.io/v1beta1
        kind: MeshTLSAuthentication
        metadata: {name: frontend-west, namespace: test}
        spec:
          identityRefs: [{kind: ServiceAccount, name: frontend}]
          clusters: [workload1]
        """
    static let policy = """
        apiVersion: policy.starling.io/v1beta1
        kind: AuthorizationPolicy
        metadata: {name: podinfo-from-frontend, namespace: test}
        spec:
          targetRef: {group: policy.starling.io, kind: Server, name: podinfo-http}
          requiredAuthenticationRefs: [{group: policy.starling.io, kind: MeshTLSAuthentication, name: frontend-west}]
        """

    @Test func aServerPicksTheWorkloadAndResolvesItsPortName() throws {
        let compiler = InboundPolicyCompiler(clusterName: "workload2")
        let (policy, problems) = compiler.compile(
            workload: try workload, in: try namespaceResources([Self.server, Self.frontendOnly, Self.policy]))
        #expect(problems.isEmpty, "\(problems)")
        let server = try #require(policy.servers.first)
        #expect(server.name == "test/podinfo-http")
        #expect(server.ports == [4143, 9898])
        #expect(server.accessPolicy == .deny)
        let authorization = try #require(server.authorizations.first)
        #expect(authorization.policy == "test/podinfo-from-frontend")
        #expect(authorization.requirements.first?.identities == ["frontend.test.serviceaccount.identity.starling.cluster.local"])
        #expect(authorization.requirements.first?.clusters == ["workload1"])
        // And it decides as written.
        let e = InboundPolicyEvaluator(policy)
        let frontend = "frontend.test.serviceaccount.identity.starling.cluster.local"
        let get = InboundPolicyEvaluator.Request(method: "GET", path: "/", header: { _ in nil })
        #expect(e.decide(port: 9898, caller: .init(identity: frontend, cluster: "workload1", address: nil, viaGateway: true), request: get).allowed)
        #expect(!e.decide(port: 9898, caller: .init(identity: frontend, cluster: nil, address: nil), request: get).allowed)
    }

    @Test func aSecondServerOnTheSamePortIsReportedAndIgnored() throws {
        let second = Self.server.replacingOccurrences(of: "name: podinfo-http", with: "name: zz-podinfo-again")
        let (policy, problems) = InboundPolicyCompiler(clusterName: "c").compile(
            workload: try workload, in: try namespaceResources([Self.server, second]))
        #expect(policy.servers.map(\.name) == ["test/podinfo-http"])
        #expect(problems.contains { $0.description.contains("Server test/zz-podinfo-again: port http is already covered by Server test/podinfo-http") })
    }

    @Test func anAuthenticationInAnotherNamespaceIsReportedAsUnsupported() throws {
        let policy = Self.policy.replacingOccurrences(of: "name: frontend-west}", with: "name: frontend-west, namespace: other}")
        let (_, problems) = InboundPolicyCompiler(clusterName: "c").compile(
            workload: try workload, in: try namespaceResources([Self.server, Self.frontendOnly, policy]))
        #expect(problems.contains { $0.description.contains("is in another namespace, which is not supported") })
    }

    @Test func aServerWhoseSelectorMissesTheWorkloadIsLeftOut() throws {
        let other = Self.server.replacingOccurrences(of: "app: podinfo", with: "app: other")
        let (policy, _) = InboundPolicyCompiler(clusterName: "c").compile(workload: try workload, in: try namespaceResources([other]))
        #expect(policy.servers.isEmpty)
    }

    @Test func missingAuthenticationsAndUnreachedServersAreReported() throws {
        let (policy, problems) = InboundPolicyCompiler(clusterName: "c").compile(
            workload: try workload, in: try namespaceResources([Self.server, Self.policy]))
        #expect(policy.servers.first?.authorizations.isEmpty == true)
        #expect(problems.contains { $0.description.contains("MeshTLSAuthentication test/frontend-west does not exist") })
        #expect(problems.contains { $0.description.contains("no AuthorizationPolicy reaches it") })
    }

    @Test func aNamespaceTargetedPolicyCoversEveryServerAndARouteTargetedOneItsRoute() throws {
        let namespacePolicy = """
            apiVersion: policy.starling.io/v1beta1
            kind: AuthorizationPolicy
            metadata: {name: all-of-test, namespace: test}
            spec:
              targetRef: {kind: Namespace, name: test}
              requiredAuthenticationRefs: [{kind: ServiceAccount, name: curl}]
            """
        let route = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: metrics, namespace: test}
            spec:
              parentRefs: [{group: policy.starling.io, kind: Server, name: podinfo-http}]
              rules: [{matches: [{path: {type: PathPrefix, value: /metrics}, method: GET}]}]
            """
        let routePolicy = """
            apiVersion: policy.starling.io/v1beta1
            kind: AuthorizationPolicy
            metadata: {name: metrics-scrapers, namespace: test}
            spec:
              targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: metrics}
              requiredAuthenticationRefs: [{kind: NetworkAuthentication, name: local}]
            """
        let network = """
            apiVersion: policy.starling.io/v1beta1
            kind: NetworkAuthentication
            metadata: {name: local, namespace: test}
            spec: {networks: [{cidr: 127.0.0.0/8, except: [127.0.0.99/32]}]}
            """
        let (policy, problems) = InboundPolicyCompiler(clusterName: "c").compile(
            workload: try workload, in: try namespaceResources([Self.server, namespacePolicy, route, routePolicy, network]))
        #expect(problems.isEmpty, "\(problems)")
        let server = try #require(policy.servers.first)
        #expect(server.authorizations.map(\.policy) == ["test/all-of-test"])
        #expect(server.routes.map(\.name) == ["metrics"])
        #expect(server.routes.first?.authorizations.map(\.policy) == ["test/metrics-scrapers"])
        let e = InboundPolicyEvaluator(policy)
        let get = InboundPolicyEvaluator.Request(method: "GET", path: "/metrics", header: { _ in nil })
        #expect(e.decide(port: 9898, caller: .init(identity: nil, cluster: nil, address: [127, 0, 0, 1]), request: get).allowed)
        #expect(!e.decide(port: 9898, caller: .init(identity: nil, cluster: nil, address: [127, 0, 0, 99]), request: get).allowed)
        // The server-wide policy admits curl on the route too; a POST matches no route.
        let curl = "curl.test.serviceaccount.identity.starling.cluster.local"
        #expect(e.decide(port: 9898, caller: .init(identity: curl, cluster: nil, address: nil), request: get).allowed)
        let post = InboundPolicyEvaluator.Request(method: "POST", path: "/metrics", header: { _ in nil })
        #expect(!e.decide(port: 9898, caller: .init(identity: curl, cluster: nil, address: nil), request: post).allowed)
    }

    @Test func theDefaultPolicyComesFromTheWorkloadThenNamespaceThenCluster() throws {
        var w = try workload
        let ns = try resource("""
            apiVersion: v1
            kind: Namespace
            metadata: {name: test, annotations: {config.starling.io/default-inbound-policy: all-authenticated}}
            """)
        let compiler = InboundPolicyCompiler(clusterName: "c", clusterDefault: .clusterAuthenticated)
        #expect(compiler.compile(workload: w, in: .init()).0.defaultPolicy == .clusterAuthenticated)
        #expect(compiler.compile(workload: w, in: .init()).0.defaultPolicySource == .cluster)
        #expect(compiler.compile(workload: w, in: .init(namespace: ns)).0.defaultPolicy == .allAuthenticated)
        w.metadata.annotations[AccessPolicy.defaultInboundPolicyAnnotation] = "deny"
        let (policy, _) = compiler.compile(workload: w, in: .init(namespace: ns))
        #expect(policy.defaultPolicy == .deny && policy.defaultPolicySource == .workload)
        #expect(InboundPolicyCompiler(clusterName: "c").compile(workload: try workload, in: .init()).0.defaultPolicy == .allUnauthenticated)
    }

    @Test(arguments: [
        ("kind: Server\nmetadata: {name: s, namespace: t}\nspec: {port: 80}", "spec.podSelector"),
        ("kind: Server\nmetadata: {name: s, namespace: t}\nspec: {podSelector: {}, port: 70000}", "spec.port"),
        ("kind: Server\nmetadata: {name: s, namespace: t}\nspec: {podSelector: {}, port: 80, accessPolicy: maybe}", "spec.accessPolicy"),
        ("kind: Server\nmetadata: {name: s, namespace: t}\nspec: {podSelector: {}, port: 80, proxyProtocol: HTTP/3}", "spec.proxyProtocol"),
        ("kind: AuthorizationPolicy\nmetadata: {name: p, namespace: t}\nspec: {targetRef: {kind: Service, name: x}}", "spec.targetRef.kind"),
        ("kind: AuthorizationPolicy\nmetadata: {name: p, namespace: t}\nspec: {targetRef: {kind: Server, name: x}, requiredAuthenticationRefs: [{kind: Secret, name: y}]}", "spec.requiredAuthenticationRefs[0].kind"),
        ("kind: AuthorizationPolicy\nmetadata: {name: p, namespace: t}\nspec: {targetRef: {group: policy.linkerd.io, kind: Server, name: x}}", "spec.targetRef.group"),
        ("kind: MeshTLSAuthentication\nmetadata: {name: m, namespace: t}\nspec: {identities: [\"a*b\"]}", "spec.identities[0]"),
        ("kind: MeshTLSAuthentication\nmetadata: {name: m, namespace: t}\nspec: {}", "spec.identities"),
        ("kind: MeshTLSAuthentication\nmetadata: {name: m, namespace: t}\nspec: {identities: [\"*\"], clusters: [Bad_Name]}", "spec.clusters[0]"),
        ("kind: NetworkAuthentication\nmetadata: {name: n, namespace: t}\nspec: {networks: [{cidr: 10.0.0.0/40}]}", "spec.networks[0].cidr"),
        ("kind: NetworkAuthentication\nmetadata: {name: n, namespace: t}\nspec: {networks: [{cidr: 10.0.0.0/8, except: [x]}]}", "spec.networks[0].except[0]"),
    ])
    func invalidPolicyResourcesNameTheField(document: String, path: String) throws {
        do {
            for r in try ResourceDecoder.decode("apiVersion: policy.starling.io/v1beta1\n" + document, source: "test.yaml") {
                try ResourceValidator.validate(r)
            }
            Issue.record("accepted: \(document)")
        } catch {
            #expect(error.fieldPath == path, "\(error)")
        }
    }
}
