import StarlingCore
import Testing

@Suite struct ResourceDecoderErrorTests {
    @Test func malformedYAMLNamesLineAndColumn() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [unclosed\n"
        let error = try #require(Fixtures.decodeError(text, source: "bad.yaml"))
        #expect(error.code == .invalidYAML)
        #expect(error.source == "bad.yaml")
        #expect(error.description.hasPrefix("bad.yaml: document 1: invalid YAML: line "))
        #expect(error.description.contains("column"))
    }

    @Test func badIndentationIsASyntaxError() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n labels: {}\n"
        #expect(Fixtures.decodeError(text)?.code == .invalidYAML)
    }

    @Test func syntaxErrorInALaterDocumentNamesThatDocument() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: \"unterminated\n"
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .invalidYAML)
        #expect(error.documentIndex == 1)
    }

    @Test func malformedJSONGivesAJSONError() throws {
        let text = """
            {"apiVersion": "v1",
             "kind": "Namespace",
             "metadata": {"name": "a"},,}
            """
        let error = try #require(Fixtures.decodeError(text, source: "in.json"))
        #expect(error.code == .invalidJSON)
        #expect(error.description.contains("line 3, column"))
    }

    @Test func duplicateKeysAreRefused() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              name: other
            spec: {ports: [{port: 80}]}
            """
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .duplicateKey)
        #expect(error.description.contains("\"name\""))
    }

    @Test func duplicateKeysInNestedMappingsAreRefused() throws {
        let text = """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: s}
            spec:
              service: web
              backends:
              - service: a
                weight: 1
                weight: 2
            """
        #expect(Fixtures.decodeError(text)?.code == .duplicateKey)
    }

    @Test func keysThatOnlyDifferInYAMLTypeAreDuplicates() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nspec: {1: x, \"1\": y}\n"
        #expect(Fixtures.decodeError(text)?.code == .duplicateKey)
    }

    @Test func duplicateKeysInJSONAreRefused() throws {
        let text = #"{"apiVersion": "v1", "kind": "Namespace", "kind": "Namespace", "metadata": {"name": "a"}}"#
        #expect(Fixtures.decodeError(text)?.code == .duplicateKey)
    }

    @Test func aDocumentMustBeAMapping() throws {
        #expect(Fixtures.decodeError("- a\n- b\n")?.code == .notAnObject)
        #expect(Fixtures.decodeError("just a string\n")?.code == .notAnObject)
        #expect(Fixtures.decodeError("[1, 2]")?.code == .notAnObject)
    }

    @Test func unknownKindIsNamedWithTheKnownKinds() throws {
        let error = try #require(Fixtures.decodeError("apiVersion: v1\nkind: Gadget\nmetadata: {name: a}\n"))
        #expect(error.code == .unknownKind)
        #expect(error.fieldPath == "kind")
        #expect(error.message.contains("\"Gadget\""))
        #expect(error.message.contains("TrafficSplit"))
        #expect(error.message.contains("MeshConfig"))
    }

    @Test func wrongCaseKindSuggestsTheRightOne() throws {
        let error = try #require(Fixtures.decodeError("apiVersion: v1\nkind: service\nmetadata: {name: a}\n"))
        #expect(error.code == .unknownKind)
        #expect(error.message.contains("did you mean Service?"))
    }

    @Test func unknownAPIVersionListsTheAcceptedOnes() throws {
        let text = Fixtures.walkthroughSplit.replacing("v1alpha1", with: "v1beta9")
        let error = try #require(Fixtures.decodeError(text, source: "split.yaml"))
        #expect(error.code == .unknownAPIVersion)
        #expect(error.fieldPath == "apiVersion")
        #expect(error.message.contains("split.smi-spec.io/v1alpha4"))
    }

    @Test func missingRequiredFieldsNameTheirPath() throws {
        #expect(Fixtures.decodeError("kind: Namespace\nmetadata: {name: a}\n")?.fieldPath == "apiVersion")
        #expect(Fixtures.decodeError("apiVersion: v1\nmetadata: {name: a}\n")?.fieldPath == "kind")
        #expect(Fixtures.decodeError("apiVersion: v1\nkind: Namespace\n")?.fieldPath == "metadata")
        let noName = try #require(Fixtures.decodeError("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {}}\n"))
        #expect(noName.code == .missingField)
        #expect(noName.fieldPath == "metadata.name")
        let noService = try #require(
            Fixtures.decodeError(Fixtures.walkthroughSplit.replacing("  service: podinfo\n  backends", with: "  backends")))
        #expect(noService.code == .missingField)
        #expect(noService.fieldPath == "spec.service")
    }

    @Test func errorsNameSourceDocumentAndField() throws {
        let bad = Fixtures.walkthroughSplit.replacing("weight: 50\n  - service: podinfo-workload2", with: "weight: \"-5\"\n  - service: podinfo-workload2")
        let text = Fixtures.service + "---\n" + bad
        let error = try #require(Fixtures.decodeError(text, source: "split.yaml"))
        #expect(error.code == .invalidValue)
        #expect(error.documentIndex == 1)
        #expect(error.fieldPath == "spec.backends[0].weight")
        #expect(
            error.description
                == #"split.yaml: document 2: spec.backends[0].weight: expected a non-negative integer or quantity (e.g. 50 or 500m), got "-5""#
        )
    }

    @Test func errorsInsideAListNameTheItem() throws {
        let text = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Namespace
              metadata: {name: ok}
            - apiVersion: v1
              kind: Service
              metadata: {name: web}
              spec: {ports: [{port: 0}]}
            """
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.fieldPath == "items[1].spec.ports[0].port")
    }

    @Test func invalidNamesAreRefused() throws {
        let upper = try #require(Fixtures.decodeError("apiVersion: v1\nkind: Namespace\nmetadata: {name: Test}\n"))
        #expect(upper.fieldPath == "metadata.name")
        // Services are DNS labels: no dots.
        let dotted = "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\nspec: {ports: [{port: 80}]}\n"
        #expect(Fixtures.decodeError(dotted)?.fieldPath == "metadata.name")
        // Other kinds may be subdomains.
        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: a.b}\n"
        #expect(Fixtures.decodeError(secret) == nil)
        let long = String(repeating: "a", count: 64)
        #expect(Fixtures.decodeError("apiVersion: v1\nkind: Namespace\nmetadata: {name: \(long)}\n")?.code == .invalidValue)
    }

    @Test func clusterScopedKindsTakeNoNamespace() throws {
        let error = try #require(Fixtures.decodeError("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n"))
        #expect(error.fieldPath == "metadata.namespace")
        #expect(error.message.contains("cluster-scoped"))
    }

    @Test func labelsMustBeStringsWithValidKeysAndValues() throws {
        func labels(_ yaml: String) -> ResourceError? {
            Fixtures.decodeError("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: \(yaml)\n")
        }
        let unquoted = try #require(labels("{mirror.starling.io/exported: true}"))
        #expect(unquoted.fieldPath == #"metadata.labels["mirror.starling.io/exported"]"#)
        #expect(unquoted.message.contains("quote it"))
        #expect(labels("{\"bad key!\": x}")?.code == .invalidValue)
        #expect(labels("{a: \(String(repeating: "v", count: 64))}")?.code == .invalidValue)
        #expect(labels("{a: -x}")?.code == .invalidValue)
        #expect(labels("{a: \"\"}") == nil)
        #expect(labels("{example.com/a_b.c: v-1.x_2}") == nil)
        #expect(labels("[a]")?.fieldPath == "metadata.labels")
    }

    @Test func annotationsAcceptAnyStringValue() throws {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations: {note: \"any text: here!\"}\n"
        #expect(Fixtures.decodeError(text) == nil)
    }

    @Test func inputOverTheSizeLimitIsRefusedWithoutParsing() throws {
        let big = String(repeating: "a", count: 50 * 1024 * 1024)
        let clock = ContinuousClock()
        var error: ResourceError?
        let elapsed = clock.measure { error = Fixtures.decodeError(big, source: "huge.yaml") }
        #expect(error?.code == .tooLarge)
        #expect(error?.description.contains("huge.yaml: input is 50 MiB, over the limit of 16 MiB") == true)
        #expect(elapsed < .seconds(1))
    }

    @Test func aliasExpansionBombsAreRefused() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...7 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .tooLarge)
    }

    @Test func deepNestingIsRefusedWithoutCrashing() throws {
        let flow = "a: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(Fixtures.decodeError(flow)?.code == .invalidYAML)
        let json = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(Fixtures.decodeError(json) != nil)
        var block = ""
        for i in 0..<3000 { block += String(repeating: " ", count: i) + "k:\n" }
        #expect(Fixtures.decodeError(block)?.code == .invalidYAML)
        // Deep but within limits: reaches the resource checks.
        let ok = "a: " + String(repeating: "[", count: 900) + String(repeating: "]", count: 900)
        #expect(Fixtures.decodeError(ok)?.code == .missingField)
    }

    @Test func aListCannotNestAList() throws {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n"
        #expect(Fixtures.decodeError(text)?.fieldPath == "items[0]")
    }

    @Test func errorEqualityComparesCodesOnly() {
        #expect(ResourceError(.invalidValue, "a") == ResourceError(.invalidValue, "b", fieldPath: "x"))
        #expect(ResourceError(.invalidValue, "a") != ResourceError(.missingField, "a"))
    }
}
