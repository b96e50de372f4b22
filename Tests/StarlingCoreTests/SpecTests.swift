import StarlingCore
import Testing

@Suite struct ServiceSpecTests {
    @Test func readsPortsAndSelector() throws {
        let spec = try ServiceSpec(try Fixtures.one(Fixtures.service))
        #expect(spec.ports == [ServicePort(name: "http", port: 9898, targetPort: 9898, protocol: "TCP", appProtocol: "http")])
        #expect(spec.selector == ["app": "podinfo"])
        #expect(spec.effectiveSelector(serviceName: "podinfo") == ["app": "podinfo"])
    }

    @Test func emptySelectorSelectsAppEqualsServiceName() throws {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {ports: [{port: 5432, appProtocol: postgresql}]}\n"
        let spec = try ServiceSpec(try Fixtures.one(text))
        #expect(spec.selector.isEmpty)
        #expect(spec.effectiveSelector(serviceName: "db") == ["app": "db"])
        #expect(spec.labelSelector(serviceName: "db").matches(["app": "db", "version": "2"]))
        #expect(spec.ports[0].effectiveTargetPort == 5432)
        #expect(spec.ports[0].protocol == "TCP")
    }

    @Test func extraFieldsStayInTheResource() throws {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: ClusterIP, clusterIP: 10.0.0.1, ports: [{port: 80}]}\n"
        let resource = try Fixtures.one(text)
        #expect(try ServiceSpec(resource).type == "ClusterIP")
        #expect(resource.spec["clusterIP"] == .string("10.0.0.1"))
    }

    @Test(arguments: [
        ("{ports: [{port: 0}]}", "spec.ports[0].port"),
        ("{ports: [{port: 70000}]}", "spec.ports[0].port"),
        ("{ports: [{port: \"80\"}]}", "spec.ports[0].port"),
        ("{ports: [{name: a}]}", "spec.ports[0].port"),
        ("{ports: []}", "spec.ports"),
        ("{}", "spec.ports"),
        ("{ports: [{port: 80, protocol: HTTP}]}", "spec.ports[0].protocol"),
        ("{ports: [{port: 80, targetPort: http}]}", "spec.ports[0].targetPort"),
        ("{ports: [{name: a, port: 80}, {name: a, port: 81}]}", "spec.ports[1].name"),
        ("{ports: [{name: a, port: 80}, {port: 81}]}", "spec.ports[1].name"),
        ("{ports: [{port: 80}], selector: {app: 5}}", "spec.selector.app"),
        ("{ports: 80}", "spec.ports"),
    ])
    func refusesBadSpecs(spec: String, path: String) throws {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: \(spec)\n"
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.fieldPath == path)
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = ServiceSpec(
            ports: [ServicePort(name: "http", port: 80, targetPort: 8080, appProtocol: "http"), ServicePort(name: "tcp", port: 5432)],
            selector: ["app": "web"])
        let resource = Resource(name: "web", namespace: "test", labels: ["app": "web"], spec: spec)
        #expect(resource.apiVersion == "v1")
        #expect(resource.kind == "Service")
        try ResourceValidator.validate(resource)
        #expect(try resource.decodeSpec(as: ServiceSpec.self) == spec)
        #expect(throws: ResourceError(.invalidValue, "")) { try resource.decodeSpec(as: LinkSpec.self) }
    }
}

@Suite struct WorkloadSpecTests {
    @Test func readsTheWorkloadAndDefaults() throws {
        let spec = try WorkloadSpec(try Fixtures.one(Fixtures.workload))
        #expect(spec.address == "127.1.0.5")
        #expect(spec.ports == [WorkloadPort(name: "http", port: 4143, appPort: 9898)])
        #expect(spec.serviceAccount == "podinfo")
        #expect(spec.meshIdentity == MeshIdentity(namespace: "test", serviceAccount: "podinfo"))
        #expect(spec.ready)
        #expect(spec.cluster == nil)
    }

    @Test func defaultsServiceAccountAndReadiness() throws {
        let text = "apiVersion: starling.io/v1alpha1\nkind: Workload\nmetadata: {name: w, namespace: t}\nspec: {address: \"fd00::5\"}\n"
        let spec = try WorkloadSpec(try Fixtures.one(text))
        #expect(spec.serviceAccount == "default")
        #expect(spec.ready)
        #expect(spec.ports.isEmpty)
    }

    @Test(arguments: [
        ("{}", "spec.address"),
        ("{address: podinfo.local}", "spec.address"),
        ("{address: 256.1.1.1}", "spec.address"),
        ("{address: 10.0.0.1, identity: podinfo}", "spec.identity"),
        ("{address: 10.0.0.1, ready: \"yes\"}", "spec.ready"),
        ("{address: 10.0.0.1, ports: [{port: 80}, {port: 80}]}", "spec.ports[1].port"),
        ("{address: 10.0.0.1, ports: [{port: 80, appPort: -1}]}", "spec.ports[0].appPort"),
        ("{address: 10.0.0.1, serviceAccount: Bad_SA}", "spec.serviceAccount"),
    ])
    func refusesBadSpecs(spec: String, path: String) throws {
        let text = "apiVersion: starling.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec: \(spec)\n"
        #expect(Fixtures.decodeError(text)?.fieldPath == path)
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = WorkloadSpec(
            address: "127.2.0.9", ports: [WorkloadPort(port: 4143, appPort: 9898, protocol: "http")], serviceAccount: "sa",
            identity: "sa.test.serviceaccount.identity.starling.cluster.local", ready: false, cluster: "workload2")
        let resource = Resource(name: "w", namespace: "test", spec: spec)
        try ResourceValidator.validate(resource)
        #expect(try WorkloadSpec(resource) == spec)
    }
}

@Suite struct LinkSpecTests {
    @Test func readsTheLinkWithDefaults() throws {
        let spec = try LinkSpec(try Fixtures.one(Fixtures.link))
        #expect(spec.targetClusterName == "workload2")
        #expect(spec.targetClusterDomain == "cluster.local")
        #expect(spec.apiAddress == "127.2.0.1:8086")
        #expect(spec.credentialsSecret == "cluster-credentials-workload2")
        #expect(spec.gatewayPort == 4143)
        #expect(spec.probeSpec == LinkProbeSpec(path: "/ready", port: 4191, period: .seconds(3)))
        #expect(spec.selector.matches(["mirror.starling.io/exported": "true"]))
        #expect(!spec.selector.matches(["app": "x"]))
    }

    @Test func readsProbeSpecAndSelector() throws {
        let text = Fixtures.link + """
              probeSpec: {path: /health, port: 4192, period: 500ms}
              selector:
                matchLabels: {export: "yes"}
                matchExpressions:
                - {key: tier, operator: In, values: [web, api]}
              credentialsSecret: ignored-duplicate
            """
        // credentialsSecret appears twice: a duplicate key.
        #expect(Fixtures.decodeError(text)?.code == .duplicateKey)
        let fixed = text.replacing("  credentialsSecret: ignored-duplicate", with: "")
        let spec = try LinkSpec(try Fixtures.one(fixed))
        #expect(spec.probeSpec == LinkProbeSpec(path: "/health", port: 4192, period: .milliseconds(500)))
        #expect(spec.selector.matches(["export": "yes", "tier": "api"]))
        #expect(!spec.selector.matches(["export": "yes", "tier": "db"]))
    }

    @Test func acceptsTheSecretAsAReference() throws {
        let text = Fixtures.link.replacing("credentialsSecret: cluster-credentials-workload2", with: "credentialsSecret: {name: creds}")
        #expect(try LinkSpec(try Fixtures.one(text)).credentialsSecret == "creds")
    }

    @Test(arguments: [
        ("apiAddress: 127.2.0.1:8086", "apiAddress: 127.2.0.1", "spec.apiAddress"),
        ("gatewayAddress: 127.2.0.2", "gatewayAddress: not an address", "spec.gatewayAddress"),
        ("starling-gateway.starling-multicluster.serviceaccount.identity.starling.cluster.local", "starling-gateway", "spec.gatewayIdentity"),
    ] as [(String, String, String)])
    func refusesBadFields(find: String, replace: String, path: String) throws {
        let text = Fixtures.link.replacing(find, with: replace)
        #expect(Fixtures.decodeError(text)?.fieldPath == path)
    }

    @Test func refusesABadProbePeriod() throws {
        let error = try #require(Fixtures.decodeError(Fixtures.link + "  probeSpec: {period: 3 seconds}\n"))
        #expect(error.code == .invalidDuration)
        #expect(error.fieldPath == "spec.probeSpec.period")
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = LinkSpec(
            targetClusterName: "east", apiAddress: "[fd00::1]:8086", credentialsSecret: "creds", gatewayAddresses: ["gw.example.com"],
            gatewayPort: 4200, gatewayIdentity: "gw.mc.serviceaccount.identity.starling.example.org",
            probeSpec: LinkProbeSpec(period: .milliseconds(1500)))
        let resource = Resource(name: "east", namespace: "starling-multicluster", spec: spec)
        try ResourceValidator.validate(resource)
        #expect(try LinkSpec(resource) == spec)
    }

    @Test func namesEveryGatewayOfAReplicatedCluster() throws {
        let spec = LinkSpec(
            targetClusterName: "east", apiAddress: "10.0.0.1:8086", credentialsSecret: "creds",
            gatewayAddresses: ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
            gatewayIdentity: "gw.mc.serviceaccount.identity.starling.example.org")
        let resource = Resource(name: "east", namespace: "starling-multicluster", spec: spec)
        try ResourceValidator.validate(resource)
        #expect(try LinkSpec(resource).gatewayAddresses == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(try LinkSpec(resource).gatewayAddress == "10.0.0.1")

        let bad = Fixtures.link + "  gatewayAddresses: [127.2.0.2, \"not an address\"]\n"
        let error = try #require(Fixtures.decodeError(bad))
        #expect(error.fieldPath == "spec.gatewayAddresses[1]", "got \(error)")
        let empty = try #require(Fixtures.decodeError(Fixtures.link + "  gatewayAddresses: []\n"))
        #expect(empty.fieldPath == "spec.gatewayAddresses")
    }
}

extension LinkSpecTests {
    @Test(arguments: [
        ("targetClusterName: workload2\n", "spec.targetClusterName"),
        ("apiAddress: 127.2.0.1:8086\n", "spec.apiAddress"),
        ("gatewayIdentity: starling-gateway.starling-multicluster.serviceaccount.identity.starling.cluster.local\n", "spec.gatewayIdentity"),
    ])
    func refusesMissingFields(remove: String, path: String) throws {
        let error = try #require(Fixtures.decodeError(Fixtures.link.replacing("  " + remove, with: "")))
        #expect(error.code == .missingField)
        #expect(error.fieldPath == path)
    }
}

@Suite struct MeshConfigSpecTests {
    @Test func readsTheMeshConfig() throws {
        let resource = try Fixtures.one(Fixtures.meshConfig())
        #expect(resource.metadata.namespace == nil)
        let spec = try MeshConfigSpec(resource)
        #expect(spec.clusterName == "workload1")
        #expect(spec.trustDomain == "cluster.local")
        #expect(spec.identity.trustAnchorsPEM == Fixtures.pem)
        #expect(spec.identity.issuer.keySecret == SecretReference(name: "issuer-key", namespace: "starling"))
        #expect(spec.apiAddress == nil)
    }

    @Test func readsTheIssuanceLifetimeAndRefusesOneTooShort() throws {
        #expect(try MeshConfigSpec(Fixtures.one(Fixtures.meshConfig())).identity.issuanceLifetime == .seconds(86400))
        let short = Fixtures.meshConfig().replacing("    issuer:\n", with: "    issuanceLifetime: 60s\n    issuer:\n")
        let spec = try MeshConfigSpec(Fixtures.one(short))
        #expect(spec.identity.issuanceLifetime == .seconds(60))
        #expect(try MeshConfigSpec(Resource(name: "mesh", spec: spec)) == spec, "round trip")
        let tooShort = Fixtures.meshConfig().replacing("    issuer:\n", with: "    issuanceLifetime: 5s\n    issuer:\n")
        let error = Fixtures.decodeError(tooShort)
        #expect(error?.fieldPath == "spec.identity.issuanceLifetime", "got \(String(describing: error))")
        #expect(error?.message.contains("at least 1m0s") == true, "got \(String(describing: error?.message))")
        let notADuration = Fixtures.meshConfig().replacing("    issuer:\n", with: "    issuanceLifetime: a minute\n    issuer:\n")
        #expect(Fixtures.decodeError(notADuration)?.fieldPath == "spec.identity.issuanceLifetime")
    }

    @Test func refusesMissingIssuerAndBadPEM() throws {
        let noKey = Fixtures.meshConfig().replacing("      keySecret:\n        name: issuer-key\n        namespace: starling\n", with: "")
        #expect(Fixtures.decodeError(noKey)?.fieldPath == "spec.identity.issuer.keySecret")
        let notPEM = Fixtures.meshConfig(pem: "hello\n")
        #expect(Fixtures.decodeError(notPEM)?.fieldPath == "spec.identity.trustAnchorsPEM")
        let noCluster = Fixtures.meshConfig().replacing("  clusterName: workload1\n", with: "")
        #expect(Fixtures.decodeError(noCluster)?.fieldPath == "spec.clusterName")
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = MeshConfigSpec(
            clusterName: "east", trustDomain: "example.org",
            identity: MeshIdentitySettings(
                trustAnchorsPEM: Fixtures.pem,
                issuer: MeshIssuer(certificatePEM: Fixtures.pem, keySecret: SecretReference(name: "k", namespace: "starling"))),
            apiAddress: "127.1.0.1:8086", gatewayAddress: "127.1.0.2")
        let resource = Resource(name: "mesh", spec: spec)
        try ResourceValidator.validate(resource)
        #expect(try MeshConfigSpec(resource) == spec)
    }
}

@Suite struct SecretSpecTests {
    @Test func mergesDataAndStringData() throws {
        let text = """
            apiVersion: v1
            kind: Secret
            metadata: {name: creds, namespace: test}
            type: starling.io/credentials
            data:
              token: aGVsbG8=
              shared: b2xk
            stringData:
              shared: new
            """
        let spec = try SecretSpec(try Fixtures.one(text))
        #expect(spec.type == "starling.io/credentials")
        #expect(spec.value("token") == Array("hello".utf8))
        #expect(spec.string("shared") == "new")
        #expect(spec.value("missing") == nil)
    }

    @Test func defaultsToOpaque() throws {
        let spec = try SecretSpec(try Fixtures.one("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"))
        #expect(spec.type == "Opaque")
        #expect(spec.data.isEmpty)
    }

    @Test func refusesInvalidBase64AndKeys() throws {
        let bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {token: \"not base64!\"}\n"
        #expect(Fixtures.decodeError(bad)?.fieldPath == "data.token")
        let badKey = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {\"a/b\": x}\n"
        #expect(Fixtures.decodeError(badKey)?.fieldPath == #"stringData["a/b"]"#)
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = SecretSpec(data: ["key.pem": Array(Fixtures.pem.utf8), "bin": [0, 255, 1]])
        #expect(try SecretSpec(Resource(name: "s", namespace: "t", spec: spec)) == spec)
    }
}

@Suite struct HTTPRouteSpecTests {
    @Test func readsWeightedBackendRefs() throws {
        let text = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: podinfo-split, namespace: test}
            spec:
              parentRefs:
              - {name: podinfo, kind: Service, group: core, port: 9898}
              rules:
              - matches: [{path: {type: PathPrefix, value: /}}]
                backendRefs:
                - {name: podinfo, port: 9898, weight: 50}
                - {name: podinfo-workload2, port: 9898}
            """
        let spec = try HTTPRouteSpec(try Fixtures.one(text))
        #expect(spec.parentRefs == [HTTPRouteParentRef(name: "podinfo", kind: "Service", port: 9898)])
        #expect(spec.rules.count == 1)
        #expect(spec.rules[0].backendRefs == [
            HTTPBackendRef(name: "podinfo", port: 9898, weight: 50),
            HTTPBackendRef(name: "podinfo-workload2", port: 9898, weight: 1),
        ])
        #expect(spec.rules[0].matches.count == 1)
    }

    @Test func acceptsV1beta1AndRefusesBadWeights() throws {
        let text = """
            apiVersion: gateway.networking.k8s.io/v1beta1
            kind: HTTPRoute
            metadata: {name: r}
            spec:
              parentRefs: [{name: web}]
              rules: [{backendRefs: [{name: web, weight: -1}]}]
            """
        #expect(Fixtures.decodeError(text)?.fieldPath == "spec.rules[0].backendRefs[0].weight")
        #expect(Fixtures.decodeError(text.replacing("weight: -1", with: "weight: 3")) == nil)
        #expect(Fixtures.decodeError(text.replacing("parentRefs: [{name: web}]", with: "parentRefs: []"))?.fieldPath == "spec.parentRefs")
    }

    @Test func readsMatchesAndRefusesWhatTheMeshDoesNotEvaluate() throws {
        let text = """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: r, namespace: t}
            spec:
              parentRefs: [{name: web}]
              rules:
              - matches:
                - {path: {type: Exact, value: /login}, method: POST}
                - {headers: [{name: X-Canary, value: "1"}]}
                backendRefs: [{name: web}]
              - backendRefs: [{name: web}]
            """
        let spec = try HTTPRouteSpec(try Fixtures.one(text))
        #expect(spec.rules[0].requestMatches == [
            HTTPRouteMatch(pathType: .exact, path: "/login", method: "POST"),
            HTTPRouteMatch(headers: ["x-canary": "1"]),
        ])
        #expect(spec.rules[1].requestMatches == [HTTPRouteMatch()])
        let regex = text.replacing("{type: Exact, value: /login}", with: "{type: RegularExpression, value: /log.*}")
        #expect(Fixtures.decodeError(regex)?.fieldPath == "spec.rules[0].matches[0].path.type")
        #expect(Fixtures.decodeError(text.replacing("method: POST", with: "method: post"))?.fieldPath == "spec.rules[0].matches[0].method")
        #expect(Fixtures.decodeError(text.replacing("value: /login", with: "value: login"))?.fieldPath == "spec.rules[0].matches[0].path.value")
    }

    @Test func matchesPathsBySegmentMethodAndHeaders() {
        let api = HTTPRouteMatch(pathType: .prefix, path: "/api")
        #expect(api.matches(method: "GET", path: "/api", header: { _ in nil }))
        #expect(api.matches(method: "GET", path: "/api/v1?x=1", header: { _ in nil }))
        #expect(!api.matches(method: "GET", path: "/apix", header: { _ in nil }))
        #expect(HTTPRouteMatch().matches(method: "GET", path: "/anything", header: { _ in nil }))
        let login = HTTPRouteMatch(pathType: .exact, path: "/login", method: "POST", headers: ["x-canary": "1"])
        #expect(login.matches(method: "POST", path: "/login?next=/", header: { $0 == "x-canary" ? "1" : nil }))
        #expect(!login.matches(method: "GET", path: "/login", header: { $0 == "x-canary" ? "1" : nil }))
        #expect(!login.matches(method: "POST", path: "/login/x", header: { $0 == "x-canary" ? "1" : nil }))
        #expect(!login.matches(method: "POST", path: "/login", header: { _ in nil }))
    }

    @Test func roundTripsThroughItsBody() throws {
        let spec = HTTPRouteSpec(
            parentRefs: [HTTPRouteParentRef(name: "web", kind: "Service", port: 80)],
            rules: [HTTPRouteRule(backendRefs: [HTTPBackendRef(name: "web-v1", port: 80, weight: 9), HTTPBackendRef(name: "web-v2", weight: 1)])])
        #expect(try HTTPRouteSpec(Resource(name: "r", namespace: "t", spec: spec)) == spec)
    }
}

@Suite struct NamespaceSpecTests {
    @Test func namespaceHasAnEmptyBody() throws {
        let resource = Resource(name: "test", spec: NamespaceSpec())
        #expect(resource.kind == "Namespace")
        #expect(resource.body.isEmpty)
        try ResourceValidator.validate(resource)
    }
}
