import StarlingCore
import Testing

@Suite struct ResourceDecoderTests {
    @Test func decodesTheWalkthroughSplitVerbatim() throws {
        let split = try Fixtures.one(Fixtures.walkthroughSplit, source: "split.yaml")
        #expect(split.apiVersion == "split.smi-spec.io/v1alpha1")
        #expect(split.kind == "TrafficSplit")
        #expect(split.metadata.name == "podinfo")
        #expect(split.metadata.namespace == "test")
        #expect(split.key == ResourceKey(kind: "TrafficSplit", namespace: "test", name: "podinfo"))
        let backends = try #require(split.spec["backends"]?.arrayValue)
        #expect(backends.count == 2)
        #expect(backends[1].objectValue?["weight"] == .int(50))
        #expect(split.spec.keys == ["service", "backends"])
    }

    @Test func readsSeveralDocumentsAndSkipsEmptyOnes() throws {
        let text = "---\n" + Fixtures.service + "---\n---\n# only a comment\n---\n" + Fixtures.workload + "---\n"
        let resources = try ResourceDecoder.decode(text, source: "all.yaml")
        #expect(resources.map(\.kind) == ["Service", "Workload"])
    }

    @Test func emptyInputHasNoResources() throws {
        #expect(try ResourceDecoder.decode("", source: "-").isEmpty)
        #expect(try ResourceDecoder.decode("# nothing\n", source: "-").isEmpty)
        #expect(try ResourceDecoder.decode("  \n", source: "-").isEmpty)
    }

    @Test func keepsKeyOrderOfTheBody() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              selector: {app: web}
              ports: [{port: 80}]
              type: ClusterIP
            status: {loadBalancer: {}}
            """
        let service = try Fixtures.one(text)
        #expect(service.body.keys == ["spec", "status"])
        #expect(service.spec.keys == ["selector", "ports", "type"])
    }

    @Test func resolvesPlainScalarsByTheCoreSchema() throws {
        let text = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: scalars}
            spec:
              int: 42
              negative: -7
              hex: 0x1F
              octal: 0o17
              float: 1.5
              exp: 1e3
              yes11: yes
              on11: on
              bool: true
              nullTilde: ~
              nullWord: null
              empty:
              quotedInt: "42"
              singleQuotedBool: 'true'
              version: 1.2.3
              quantity: 500m
              unicode: grüße ✓
              taggedString: !!str 12
            """
        let spec = try Fixtures.one(text).spec
        #expect(spec["int"] == .int(42))
        #expect(spec["negative"] == .int(-7))
        #expect(spec["hex"] == .int(31))
        #expect(spec["octal"] == .int(15))
        #expect(spec["float"] == .double(1.5))
        #expect(spec["exp"] == .double(1000))
        #expect(spec["yes11"] == .string("yes"))
        #expect(spec["on11"] == .string("on"))
        #expect(spec["bool"] == .bool(true))
        #expect(spec["nullTilde"] == .null)
        #expect(spec["nullWord"] == .null)
        #expect(spec["empty"] == .null)
        #expect(spec["quotedInt"] == .string("42"))
        #expect(spec["singleQuotedBool"] == .string("true"))
        #expect(spec["version"] == .string("1.2.3"))
        #expect(spec["quantity"] == .string("500m"))
        #expect(spec["unicode"] == .string("grüße ✓"))
        #expect(spec["taggedString"] == .string("12"))
    }

    @Test func literalBlocksKeepNewlines() throws {
        let resource = try Fixtures.one(Fixtures.meshConfig())
        let pem = try #require(resource.spec["identity"]?.objectValue?["trustAnchorsPEM"]?.stringValue)
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(pem.hasSuffix("-----END CERTIFICATE-----\n"))
    }

    @Test func readsJSONInput() throws {
        let text = """
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "test"},
             "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "web"}}}
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}}
            """
        let resources = try ResourceDecoder.decode(text, source: "in.json")
        #expect(resources.map(\.kind) == ["Service", "Namespace"])
        #expect(resources[0].spec.keys == ["ports", "selector"])
    }

    @Test func acceptsFlowStyleYAMLThatIsNotJSON() throws {
        let text = "{apiVersion: v1, kind: Namespace, metadata: {name: flow}}"
        #expect(try Fixtures.one(text).metadata.name == "flow")
    }

    @Test func unwrapsAList() throws {
        let text = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Namespace
              metadata: {name: test}
            - apiVersion: v1
              kind: Service
              metadata: {name: web, namespace: test}
              spec: {ports: [{port: 80}]}
            """
        let resources = try ResourceDecoder.decode(text, source: "list.yaml")
        #expect(resources.map(\.kind) == ["Namespace", "Service"])
    }

    @Test func leavesNamespaceUnsetUntilDefaulted() throws {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
        let service = try Fixtures.one(text)
        #expect(service.metadata.namespace == nil)
        #expect(service.withDefaultNamespace("default").metadata.namespace == "default")
        #expect(service.withDefaultNamespace("a").withDefaultNamespace("b").metadata.namespace == "a")
        let ns = try Fixtures.one("apiVersion: v1\nkind: Namespace\nmetadata: {name: test}\n")
        #expect(ns.withDefaultNamespace("default").metadata.namespace == nil)
    }

    @Test func readsStoreMetadata() throws {
        let text = """
            apiVersion: v1
            kind: Namespace
            metadata:
              name: test
              resourceVersion: "42"
              creationTimestamp: "2024-05-01T10:00:00Z"
              uid: 6f1c
              generation: 3
            """
        let meta = try Fixtures.one(text).metadata
        #expect(meta.resourceVersion == 42)
        #expect(meta.creationTimestamp == "2024-05-01T10:00:00Z")
        #expect(meta.uid == "6f1c")
    }

    @Test func decodesStoredCompactJSON() throws {
        let service = try Fixtures.one(Fixtures.service)
        let stored = ResourceEncoder.compactJSON(service)
        #expect(!stored.contains("\n"))
        #expect(try ResourceDecoder.decodeStored(stored) == service)
    }

    @Test func storedDecodingChecksShapeOnly() throws {
        let unknownKind = #"{"apiVersion":"x/v1","kind":"Gadget","metadata":{"name":"g"}}"#
        #expect(try ResourceDecoder.decodeStored(unknownKind).kind == "Gadget")
        #expect(throws: ResourceError(.missingField, "")) {
            try ResourceDecoder.decodeStored(#"{"apiVersion":"v1","kind":"Service"}"#)
        }
        #expect(throws: ResourceError(.invalidJSON, "")) { try ResourceDecoder.decodeStored("{") }
    }
}
