import StarlingCore
import Testing

@Suite struct TrafficSplitSpecTests {
    static func split(version: String, backends: String, extra: String = "") -> String {
        """
        apiVersion: split.smi-spec.io/\(version)
        kind: TrafficSplit
        metadata:
          name: canary
          namespace: test
        spec:
          service: website
        \(extra)  backends:
        \(backends)
        """
    }

    @Test func walkthroughSplitIsFiftyFifty() throws {
        let spec = try TrafficSplitSpec(try Fixtures.one(Fixtures.walkthroughSplit))
        #expect(spec.service == "podinfo")
        #expect(spec.apiVersion == "split.smi-spec.io/v1alpha1")
        #expect(spec.backends == [
            TrafficSplitBackend(service: "podinfo", weight: 50_000),
            TrafficSplitBackend(service: "podinfo-workload2", weight: 50_000),
        ])
        #expect(spec.totalWeight == 100_000)
    }

    @Test func v1alpha1AcceptsMilliQuantities() throws {
        let text = Self.split(
            version: "v1alpha1",
            backends: "  - service: website-v1\n    weight: 500m\n  - service: website-v2\n    weight: 500m")
        let spec = try TrafficSplitSpec(try Fixtures.one(text))
        #expect(spec.backends.map(\.weight) == [500, 500])
    }

    @Test func v1alpha1AcceptsOtherQuantityForms() throws {
        let text = Self.split(
            version: "v1alpha1",
            backends: "  - service: a\n    weight: 1\n  - service: b\n    weight: \"1k\"\n  - service: c\n    weight: 0.5")
        let spec = try TrafficSplitSpec(try Fixtures.one(text))
        #expect(spec.backends.map(\.weight) == [1000, 1_000_000, 500])
    }

    @Test func v1alpha2AcceptsIntegers() throws {
        let text = Self.split(
            version: "v1alpha2", backends: "  - service: website-v1\n    weight: 90\n  - service: website-v2\n    weight: 10")
        let spec = try TrafficSplitSpec(try Fixtures.one(text))
        #expect(spec.backends.map(\.weight) == [90_000, 10_000])
        #expect(spec.matches.isEmpty)
    }

    @Test(arguments: ["v1alpha3", "v1alpha4"])
    func laterVersionsKeepMatchesVerbatim(version: String) throws {
        let matches = "  matches:\n  - kind: HTTPRouteGroup\n    name: ab-test\n    apiGroup: specs.smi-spec.io\n"
        let text = Self.split(
            version: version, backends: "  - service: website-v1\n    weight: 0\n  - service: website-v2\n    weight: 100",
            extra: matches)
        let resource = try Fixtures.one(text)
        let spec = try TrafficSplitSpec(resource)
        #expect(spec.backends.map(\.weight) == [0, 100_000])
        #expect(spec.matches.count == 1)
        #expect(spec.matches[0].objectValue?["kind"] == .string("HTTPRouteGroup"))
        #expect(resource.spec.keys == ["service", "matches", "backends"])
    }

    @Test(arguments: ["\"-5\"", "-5", "abc", "\"\"", "true", "[1]", "\"5x\""])
    func v1alpha1RefusesBadWeights(weight: String) throws {
        let text = Self.split(
            version: "v1alpha1", backends: "  - service: a\n    weight: \(weight)\n  - service: b\n    weight: 1")
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .invalidValue)
        #expect(error.fieldPath == "spec.backends[0].weight")
        #expect(error.message.hasPrefix("expected a non-negative integer or quantity (e.g. 50 or 500m), got"))
    }

    @Test(arguments: ["-5", "500m", "\"50\"", "1.5", "abc"])
    func integerVersionsRefuseNonIntegerWeights(weight: String) throws {
        let text = Self.split(
            version: "v1alpha2", backends: "  - service: a\n    weight: \(weight)\n  - service: b\n    weight: 1")
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.fieldPath == "spec.backends[0].weight")
        #expect(error.message.hasPrefix("expected a non-negative integer"))
    }

    @Test func allZeroWeightsAreRefused() throws {
        let text = Self.split(version: "v1alpha2", backends: "  - service: a\n    weight: 0\n  - service: b\n    weight: 0")
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.fieldPath == "spec.backends")
        #expect(error.message.contains("zero"))
    }

    @Test func missingWeightIsRefused() throws {
        let text = Self.split(version: "v1alpha2", backends: "  - service: a")
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.code == .missingField)
        #expect(error.fieldPath == "spec.backends[0].weight")
    }

    @Test func needsABackend() throws {
        let text = Self.split(version: "v1alpha2", backends: "    []")
        #expect(Fixtures.decodeError(text)?.fieldPath == "spec.backends")
    }

    @Test func duplicateBackendsAreRefused() throws {
        let text = Self.split(version: "v1alpha2", backends: "  - service: a\n    weight: 1\n  - service: a\n    weight: 2")
        let error = try #require(Fixtures.decodeError(text))
        #expect(error.fieldPath == "spec.backends[1].service")
    }

    @Test func writesWeightsBackInTheirVersionsForm() throws {
        let v1 = TrafficSplitSpec(
            service: "web", backends: [.init(service: "a", weight: 500), .init(service: "b", weight: 2000)],
            apiVersion: "split.smi-spec.io/v1alpha1")
        let resource = Resource(name: "s", namespace: "test", spec: v1)
        #expect(try TrafficSplitSpec(resource) == v1)
        let weights = resource.spec["backends"]?.arrayValue?.compactMap { $0.objectValue?["weight"] }
        #expect(weights == [.string("500m"), .int(2)])
        let v2 = TrafficSplitSpec(service: "web", backends: [.init(service: "a", weight: 50_000)])
        #expect(try TrafficSplitSpec(Resource(name: "s", spec: v2)) == v2)
    }
}
