import StarlingCore
import Testing

/// The matching rules of inbound authorization: identities (exact, `*`, `*.suffix`), clusters,
/// networks, routes and their precedence, default and access policies. Each rule is checked both
/// ways: the caller it admits and the one it must refuse.
struct InboundPolicyMatchingTests {
    static let frontend = "frontend.test.serviceaccount.identity.starling.cluster.local"
    static let curl = "curl.test.serviceaccount.identity.starling.cluster.local"
    static let other = "frontend.other.serviceaccount.identity.starling.cluster.local"

    func caller(_ identity: String?, cluster: String? = nil, address: String = "127.0.0.1", viaGateway: Bool = false) -> PolicyCaller {
        PolicyCaller(identity: identity, cluster: cluster, address: IPNetwork.parseAddress(address), viaGateway: viaGateway)
    }

    func evaluator(
        requirements: [InboundPolicy.Requirement], access: AccessPolicy = .deny, routes: [InboundPolicy.Route] = []
    ) -> InboundPolicyEvaluator {
        InboundPolicyEvaluator(
            InboundPolicy(
                workload: "test/podinfo-1", cluster: "workload2",
                servers: [
                    .init(
                        name: "test/podinfo-http", ports: [9898], accessPolicy: access,
                        authorizations: requirements.isEmpty ? [] : [.init(policy: "test/allow", requirements: requirements)],
                        routes: routes)
                ]))
    }

    @Test func anExactIdentityAdmitsThatIdentityOnly() {
        let e = evaluator(requirements: [.init(name: "m", identities: [Self.frontend])])
        let allowed = e.decide(port: 9898, caller: caller(Self.frontend), request: nil)
        #expect(allowed.allowed && allowed.policy == "test/allow" && allowed.server == "test/podinfo-http")
        let denied = e.decide(port: 9898, caller: caller(Self.curl), request: nil)
        #expect(!denied.allowed)
        #expect(denied.reason.contains("no authorization of server test/podinfo-http admits \(Self.curl)"))
        #expect(!e.decide(port: 9898, caller: caller(nil), request: nil).allowed)
    }

    @Test func aSuffixPatternAdmitsWholeLabelsOnly() {
        let e = evaluator(requirements: [.init(name: "m", identities: ["*.test.serviceaccount.identity.starling.cluster.local"])])
        #expect(e.decide(port: 9898, caller: caller(Self.frontend), request: nil).allowed)
        #expect(e.decide(port: 9898, caller: caller(Self.curl), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(Self.other), request: nil).allowed)
        // "xtest" must not pass for "test".
        #expect(!e.decide(port: 9898, caller: caller("a.xtest.serviceaccount.identity.starling.cluster.local"), request: nil).allowed)
    }

    @Test func aStarAdmitsAnyVerifiedIdentityButNoUnauthenticatedCaller() {
        let e = evaluator(requirements: [.init(name: "m", identities: ["*"])])
        #expect(e.decide(port: 9898, caller: caller(Self.other), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(nil), request: nil).allowed)
    }

    @Test func clustersRestrictTheCallersCluster() {
        let e = evaluator(requirements: [.init(name: "m", identities: [Self.frontend], clusters: ["workload1"])])
        #expect(e.decide(port: 9898, caller: caller(Self.frontend, cluster: "workload1", viaGateway: true), request: nil).allowed)
        // The same identity from this cluster (workload2), or from another linked cluster, is refused.
        #expect(!e.decide(port: 9898, caller: caller(Self.frontend), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(Self.frontend, cluster: "workload3", viaGateway: true), request: nil).allowed)
    }

    @Test func aCallerWithoutAGatewayIsFromThisCluster() {
        let e = evaluator(requirements: [.init(name: "m", identities: [Self.frontend], clusters: ["workload2"])])
        #expect(e.decide(port: 9898, caller: caller(Self.frontend), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(Self.frontend, cluster: "workload1", viaGateway: true), request: nil).allowed)
    }

    @Test func networksAdmitByAddressWithExceptions() throws {
        let rule = IPNetworkRule(cidr: try #require(IPNetwork("10.0.0.0/8")), except: [try #require(IPNetwork("10.1.0.0/16"))])
        let e = evaluator(requirements: [.init(name: "n", networks: [rule], authenticated: false)])
        #expect(e.decide(port: 9898, caller: caller(nil, address: "10.2.3.4"), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(nil, address: "10.1.3.4"), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(nil, address: "192.168.1.1"), request: nil).allowed)
        #expect(e.decide(port: 9898, caller: caller(nil, address: "::ffff:10.2.3.4"), request: nil).allowed)
    }

    @Test func everyRequirementOfAPolicyMustBeMet() throws {
        let network = IPNetworkRule(cidr: try #require(IPNetwork("127.0.0.0/8")))
        let e = evaluator(requirements: [
            .init(name: "m", identities: [Self.frontend]), .init(name: "n", networks: [network], authenticated: false),
        ])
        #expect(e.decide(port: 9898, caller: caller(Self.frontend, address: "127.0.0.5"), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(Self.frontend, address: "10.0.0.5"), request: nil).allowed)
        #expect(!e.decide(port: 9898, caller: caller(Self.curl, address: "127.0.0.5"), request: nil).allowed)
    }

    @Test func aServerWithoutAuthorizationDeniesAndAuditOnlyCounts() {
        let deny = evaluator(requirements: [])
        let d = deny.decide(port: 9898, caller: caller(Self.frontend), request: nil)
        #expect(!d.allowed && d.policy == "server:deny")
        let audit = evaluator(requirements: [], access: .audit)
        let a = audit.decide(port: 9898, caller: caller(Self.frontend), request: nil)
        #expect(a.allowed && a.wouldDeny && a.policy == "server:audit" && !a.reason.isEmpty)
    }

    @Test func defaultPoliciesForPortsNoServerCovers() {
        func decide(_ policy: AccessPolicy, _ c: PolicyCaller) -> AuthorizationDecision {
            InboundPolicyEvaluator(InboundPolicy(workload: "t/w", cluster: "c", defaultPolicy: policy)).decide(port: 80, caller: c, request: nil)
        }
        #expect(decide(.allUnauthenticated, caller(nil)).allowed)
        #expect(decide(.allAuthenticated, caller(Self.curl)).allowed)
        #expect(!decide(.allAuthenticated, caller(nil)).allowed)
        #expect(decide(.clusterAuthenticated, caller(Self.curl, address: "10.1.2.3")).allowed)
        #expect(!decide(.clusterAuthenticated, caller(Self.curl, address: "203.0.113.9")).allowed)
        #expect(decide(.clusterAuthenticated, caller(Self.curl, cluster: "workload1", address: "203.0.113.9", viaGateway: true)).allowed)
        let denied = decide(.deny, caller(Self.curl))
        #expect(!denied.allowed && denied.server == "default:deny" && denied.policy == "default:deny")
        let audit = decide(.audit, caller(Self.curl))
        #expect(audit.allowed && audit.wouldDeny)
    }

    @Test func routesAuthorizeByPathAndMethodAndTheMostSpecificMatchWins() {
        let admin = InboundPolicy.Route(
            name: "admin", matches: [HTTPRouteMatch(pathType: .prefix, path: "/admin")],
            authorizations: [.init(policy: "test/admins", requirements: [.init(name: "m", identities: [Self.curl])])])
        let read = InboundPolicy.Route(
            name: "read", matches: [HTTPRouteMatch(pathType: .prefix, path: "/", method: "GET")],
            authorizations: [.init(policy: "test/readers", requirements: [.init(name: "m", identities: ["*"])])])
        let e = evaluator(requirements: [], routes: [read, admin])
        func request(_ method: String, _ path: String) -> InboundPolicyEvaluator.Request {
            .init(method: method, path: Substring(path), header: { _ in nil })
        }
        let get = e.decide(port: 9898, caller: caller(Self.frontend), request: request("GET", "/api"))
        #expect(get.allowed && get.route == "read" && get.policy == "test/readers")
        // /admin is more specific than / even for a GET: only curl may.
        let adminByFrontend = e.decide(port: 9898, caller: caller(Self.frontend), request: request("GET", "/admin/x"))
        #expect(!adminByFrontend.allowed && adminByFrontend.route == "admin")
        #expect(e.decide(port: 9898, caller: caller(Self.curl), request: request("POST", "/admin")).allowed)
        // No route matches a POST elsewhere: denied.
        let post = e.decide(port: 9898, caller: caller(Self.curl), request: request("POST", "/api"))
        #expect(!post.allowed && post.route == "" && post.reason.contains("no HTTPRoute"))
    }

    @Test func aServerPolicyAdmitsEveryRoute() {
        let route = InboundPolicy.Route(name: "only", matches: [HTTPRouteMatch(pathType: .exact, path: "/x")])
        let e = evaluator(requirements: [.init(name: "m", identities: [Self.frontend])], routes: [route])
        let d = e.decide(port: 9898, caller: caller(Self.frontend), request: .init(method: "GET", path: "/x?y=1", header: { _ in nil }))
        #expect(d.allowed && d.route == "only" && d.policy == "test/allow")
    }

    @Test func identityPatternsAreValidated() {
        #expect(IdentityPattern.problem("*") == nil)
        #expect(IdentityPattern.problem("*.test.serviceaccount.identity.starling.cluster.local") == nil)
        #expect(IdentityPattern.problem("front*.test") != nil)
        #expect(IdentityPattern.problem("a.*.b") != nil)
        #expect(IdentityPattern.problem("UPPER.case") != nil)
    }

    @Test func cidrsParseBothFamiliesAndRefuseNonsense() throws {
        #expect(IPNetwork("10.0.0.0/8")?.description == "10.0.0.0/8")
        #expect(IPNetwork("10.9.8.7/8")?.description == "10.0.0.0/8")
        #expect(try #require(IPNetwork("fd00::/8")).contains("fd12::1"))
        #expect(try #require(IPNetwork("::1")).contains("::1"))
        #expect(!(try #require(IPNetwork("::1"))).contains("::2"))
        for bad in ["10.0.0.0/33", "10.0.0/8", "300.0.0.0/8", "fd00:::1/8", "abc", "10.0.0.0/", "1::2::3"] {
            #expect(IPNetwork(bad) == nil, "\(bad)")
        }
    }

    @Test func thePolicyRoundTripsThroughJSON() throws {
        let policy = InboundPolicy(
            workload: "test/podinfo-1", cluster: "workload2", defaultPolicy: .clusterAuthenticated, defaultPolicySource: .namespace,
            servers: [
                .init(
                    name: "test/s", ports: [80, 8080], accessPolicy: .audit,
                    authorizations: [.init(policy: "test/p", requirements: [.init(name: "m", identities: ["*"], clusters: ["a"])])],
                    routes: [.init(name: "r", matches: [HTTPRouteMatch(pathType: .exact, path: "/x", method: "GET", headers: ["x": "1"])])])
            ])
        let decoded = try InboundPolicyJSON.decode(try InboundPolicyJSON.encode(policy))
        #expect(decoded == policy)
    }
}

/// The path form route authorization matches and forwards.
struct RequestPathTests {
    @Test(arguments: [
        ("/public/../admin", "/admin"),
        ("//admin", "/admin"),
        ("/%61dmin", "/admin"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/../../x", "/x"),
        ("/%2e%2e/admin", "/admin"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb", "/a%2Fb"),
        ("/x?y=/../z", "/x?y=/../z"),
        ("/a//b?q=1", "/a/b?q=1"),
        ("/%zz", "/%zz"),
        ("/%4", "/%4"),
        ("/.well-known/x", "/.well-known/x"),
        ("*", "*"),
    ])
    func normalizes(path: String, expected: String) {
        #expect(RequestPath.normalized(path) == expected)
        // Normal form is a fixed point.
        #expect(RequestPath.normalized(expected) == expected)
    }

    @Test func theScanFlagsEveryPathThatChanges() {
        for path in ["/public/../admin", "//admin", "/%61dmin", "/a/./b", "/a/b/.."] {
            #expect(RequestPath.needsNormalizing(path), "\(path)")
        }
        for path in ["/", "/api/users", "/x?y=/../z", "/a-b_c~d"] {
            #expect(!RequestPath.needsNormalizing(path), "\(path)")
        }
    }
}

struct InboundPolicyOpaqueTests {
    @Test func anOpaqueConnectionToAServerThatSpeaksHTTPIsRefused() {
        let allowAll = InboundPolicy.Authorization(policy: "t/any", requirements: [.init(name: "m", identities: ["*"])])
        for (proto, routes) in [("HTTP/1", [InboundPolicy.Route]()), ("gRPC", []), ("unknown", [InboundPolicy.Route(name: "r")])] {
            let e = InboundPolicyEvaluator(
                InboundPolicy(
                    workload: "t/w", cluster: "c",
                    servers: [.init(name: "t/s", ports: [80], proxyProtocol: proto, authorizations: [allowAll], routes: routes)]))
            let caller = PolicyCaller(identity: "a.t.serviceaccount.identity.starling.cluster.local", cluster: nil, address: nil)
            let tcp = e.decide(port: 80, caller: caller, request: nil)
            #expect(!tcp.allowed && tcp.reason.contains("an opaque connection to it is refused"), "\(proto)")
        }
        let audited = InboundPolicyEvaluator(
            InboundPolicy(workload: "t/w", cluster: "c", servers: [.init(name: "t/s", ports: [80], proxyProtocol: "HTTP/1", accessPolicy: .audit)]))
        let a = audited.decide(port: 80, caller: .init(identity: nil, cluster: nil, address: nil), request: nil)
        #expect(a.allowed && a.wouldDeny)
        let opaque = InboundPolicyEvaluator(
            InboundPolicy(
                workload: "t/w", cluster: "c",
                servers: [
                    .init(
                        name: "t/db", ports: [5432], proxyProtocol: "opaque",
                        authorizations: [.init(policy: "t/any", requirements: [.init(name: "m", identities: ["*"])])])
                ]))
        #expect(opaque.decide(port: 5432, caller: .init(identity: "x.t.serviceaccount.identity.starling.cluster.local", cluster: nil, address: nil), request: nil).allowed)
    }
}
