import StarlingCore
import Testing

@Suite struct ResourceEncoderTests {
    /// A resource exercising every value shape: PEM, quantities, numbers, nested arrays,
    /// unicode, strings YAML would mis-read, empty collections, store metadata.
    static let tricky: Resource = {
        var spec = JSONObject()
        spec["pem"] = .string(Fixtures.pem)
        spec["pemNoNewline"] = .string("line one\nline two")
        spec["trailingBlankLines"] = .string("a\n\n\n")
        spec["indentedFirstLine"] = .string("  indented\nnext\n")
        spec["crlf"] = .string("a\r\nb")
        spec["quantity"] = .string("500m")
        spec["trueString"] = .string("true")
        spec["numberString"] = .string("50")
        spec["floatString"] = .string("1e3")
        spec["nullString"] = .string("null")
        spec["tilde"] = .string("~")
        spec["empty"] = .string("")
        spec["yes"] = .string("yes")
        spec["octalish"] = .string("0777")
        spec["timestamp"] = .string("2024-05-01T10:00:00Z")
        spec["colon"] = .string("a: b")
        spec["hash"] = .string("a #b")
        spec["dash"] = .string("- item")
        spec["leadingSpace"] = .string(" x")
        spec["quote"] = .string("it's \"quoted\" \\ back")
        spec["control"] = .string("bell\u{07}tab\tnul\u{0}")
        spec["unicode"] = .string("grüße ✓ 日本 🚀")
        spec["separator"] = .string("\u{2028}")
        spec["int"] = .int(-42)
        spec["big"] = .int(Int64.max)
        spec["double"] = .double(1.5)
        spec["wholeDouble"] = .double(100)
        spec["tiny"] = .double(1e-7)
        spec["huge"] = .double(1e300)
        spec["bool"] = .bool(false)
        spec["null"] = .null
        spec["emptyArray"] = .array([])
        spec["emptyObject"] = .object(JSONObject())
        spec["nested"] = .array([
            .array([.int(1), .array([.string("deep"), .object(JSONObject([("k", .string("v"))]))])]),
            .object(JSONObject([("list", .array([.string("a"), .null])), ("obj", .object(JSONObject([("x", .int(1))])))])),
            .array([]),
        ])
        spec["true"] = .string("key that reads as a bool")
        spec["weird key: #1"] = .string("v")
        return Resource(
            apiVersion: "v1", kind: "Namespace",
            metadata: ObjectMeta(
                name: "tricky", labels: ["app": "web", "mirror.starling.io/exported": "true"],
                annotations: ["note": "multi\nline\n", "n": "50"], resourceVersion: 12,
                creationTimestamp: "2024-05-01T10:00:00Z", uid: "0b9e"),
            body: JSONObject([("spec", .object(spec)), ("status", .object(JSONObject([("phase", .string("Active"))])))]))
    }()

    @Test func yamlRoundTripsExactly() throws {
        let yaml = ResourceEncoder.yaml([Self.tricky])
        let decoded = try ResourceDecoder.decode(yaml, source: "out.yaml")
        #expect(decoded == [Self.tricky], "\(yaml)")
    }

    @Test func jsonRoundTripsExactly() throws {
        for pretty in [true, false] {
            let json = ResourceEncoder.json([Self.tricky], pretty: pretty)
            #expect(try ResourceDecoder.decode(json, source: "out.json") == [Self.tricky], "\(json)")
        }
    }

    @Test func severalResourcesRoundTripInBothFormats() throws {
        let resources = try [Fixtures.service, Fixtures.workload, Fixtures.walkthroughSplit, Fixtures.link, Fixtures.meshConfig()]
            .map { try Fixtures.one($0) }
        #expect(try ResourceDecoder.decode(ResourceEncoder.yaml(resources), source: "-") == resources)
        #expect(try ResourceDecoder.decode(ResourceEncoder.json(resources), source: "-") == resources)
        for resource in resources {
            #expect(try ResourceDecoder.decodeStored(ResourceEncoder.compactJSON(resource)) == resource)
        }
    }

    @Test func yamlSeparatesDocumentsAndOrdersKeys() throws {
        var service = try Fixtures.one(Fixtures.service)
        service.metadata.resourceVersion = 7
        service.metadata.uid = "u1"
        let yaml = ResourceEncoder.yaml([service, service])
        #expect(yaml.split(separator: "\n").filter { $0 == "---" }.count == 1)
        let expected = """
            apiVersion: v1
            kind: Service
            metadata:
              name: podinfo
              namespace: test
              labels:
                app: podinfo
                mirror.starling.io/exported: "true"
              resourceVersion: "7"
              uid: u1
            spec:
              ports:
              - name: http
                port: 9898
                targetPort: 9898
                appProtocol: http
              selector:
                app: podinfo

            """
        #expect(ResourceEncoder.yaml([service]) == expected)
    }

    @Test func yamlQuotesOnlyWhatWouldBeMisread() throws {
        let yaml = ResourceEncoder.yaml([Self.tricky])
        #expect(yaml.contains("quantity: 500m\n"))
        #expect(yaml.contains("trueString: \"true\"\n"))
        #expect(yaml.contains("numberString: \"50\"\n"))
        #expect(yaml.contains("floatString: \"1e3\"\n"))
        #expect(yaml.contains("nullString: \"null\"\n"))
        #expect(yaml.contains("empty: \"\"\n"))
        #expect(yaml.contains("unicode: grüße ✓ 日本 🚀\n"))
        #expect(yaml.contains("  pem: |\n    -----BEGIN CERTIFICATE-----\n"))
        #expect(yaml.contains("  pemNoNewline: |-\n"))
    }

    @Test func jsonWrapsZeroOrSeveralResourcesInAList() throws {
        let empty = ResourceEncoder.json([], pretty: false)
        #expect(empty == #"{"apiVersion":"v1","kind":"List","items":[]}"#)
        let service = try Fixtures.one(Fixtures.service)
        let one = ResourceEncoder.json([service], pretty: false)
        #expect(one.hasPrefix(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"podinfo","namespace":"test","#))
        let two = ResourceEncoder.json([service, service])
        #expect(two.hasPrefix("{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n    \"items\": [\n"))
    }

    @Test func decodingAnEmptyListGivesNoResources() throws {
        #expect(try ResourceDecoder.decode(ResourceEncoder.json([]), source: "-").isEmpty)
    }

    @Test func resourceJSONValueRoundTrips() throws {
        #expect(try Resource(json: Self.tricky.jsonValue) == Self.tricky)
        #expect(throws: ResourceError(.notAnObject, "")) { try Resource(json: .array([])) }
    }
}
