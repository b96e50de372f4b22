import StarlingCore
import Testing

@Suite struct LabelSelectorParseTests {
    @Test func parsesEveryRequirementForm() throws {
        let selector = try LabelSelector.parse("a=b,c!=d, e in (x, y),f notin (z),g,!h,i==j")
        #expect(selector.requirements == [
            .equals("a", "b"), .notEquals("c", "d"), .isIn("e", ["x", "y"]), .notIn("f", ["z"]), .exists("g"),
            .doesNotExist("h"), .equals("i", "j"),
        ])
        #expect(selector.matches(["a": "b", "c": "x", "e": "y", "f": "q", "g": "", "i": "j"]))
        #expect(!selector.matches(["a": "b", "c": "x", "e": "y", "f": "q", "g": "", "h": "1", "i": "j"]))
    }

    @Test func parsesQualifiedKeysAndEmptyValues() throws {
        let selector = try LabelSelector.parse("mirror.starling.io/exported=true,tier=")
        #expect(selector.requirements == [.equals("mirror.starling.io/exported", "true"), .equals("tier", "")])
        #expect(try LabelSelector.parse("").requirements.isEmpty)
        #expect(try LabelSelector.parse("  ").matches(["any": "thing"]))
    }

    @Test func descriptionParsesBack() throws {
        let selector = try LabelSelector.parse("a=b,c notin (y,x),!d")
        #expect(try LabelSelector.parse(selector.description) == selector)
    }

    @Test(arguments: ["a=b,", ",a", "a in x", "a in (x", "a in ()", "a=b=c", "a b", "!", "bad key!=x", "a=-x", "a in (x,,)", "=b", "a notin"])
    func refusesMalformedSelectors(text: String) throws {
        let error = try #require(throws: ResourceError.self) { try LabelSelector.parse(text) }
        #expect(error.code == .invalidSelector)
        #expect(error.message.contains("invalid label selector"))
    }
}

@Suite struct QuantityTests {
    @Test(arguments: [
        ("50", 50_000), ("500m", 500), ("1", 1000), ("1k", 1_000_000), ("0.5", 500), ("1.5k", 1_500_000),
        ("1Ki", 1_024_000), ("1e3", 1_000_000), ("2E-3", 2), ("1n", 1), ("0", 0), ("+7", 7000), ("-5", -5000),
        ("0.0001", 1), ("1M", 1_000_000_000),
    ] as [(String, Int64)])
    func parsesMilliValues(text: String, milli: Int64) throws {
        #expect(try Quantity.parseMilli(text) == milli)
    }

    @Test(arguments: ["", "m", "abc", "5x", "1.2.3", "1 k", "--1", "1e", "99999999999999999999", "9E"])
    func refusesMalformedQuantities(text: String) {
        #expect(throws: ResourceError(.invalidQuantity, "")) { try Quantity.parseMilli(text) }
    }

    @Test func formatsMilliValues() {
        #expect(Quantity.formatMilli(50_000) == "50")
        #expect(Quantity.formatMilli(500) == "500m")
    }
}

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("3s", Duration.seconds(3)), ("500ms", .milliseconds(500)), ("1m", .seconds(60)), ("1h30m", .seconds(5400)),
        ("8760h", .seconds(8760 * 3600)), ("1.5s", .milliseconds(1500)), ("0", .zero), ("250us", .microseconds(250)),
        ("10µs", .microseconds(10)), ("7ns", .nanoseconds(7)), ("-2s", .seconds(-2)), ("1h0m0.5s", .milliseconds(3_600_500)),
    ])
    func parsesGoDurations(text: String, duration: Duration) throws {
        #expect(try GoDuration.parse(text) == duration)
    }

    @Test(arguments: ["", "3", "s", "3 s", "3sec", "1.s2", "3s!", "-", "9999999999h", "1d"])
    func refusesMalformedDurations(text: String) {
        #expect(throws: ResourceError(.invalidDuration, "")) { try GoDuration.parse(text) }
    }

    @Test func secondsAndFormatting() throws {
        #expect(try GoDuration.seconds("1m30s") == 90)
        #expect(GoDuration.format(.seconds(3)) == "3s")
        #expect(GoDuration.format(.milliseconds(500)) == "500ms")
        #expect(GoDuration.format(.seconds(5400)) == "1h30m0s")
        #expect(GoDuration.format(.milliseconds(1500)) == "1.5s")
        #expect(GoDuration.format(.zero) == "0s")
        for text in ["3s", "500ms", "1h30m0s", "1.5s", "8760h0m0s", "2m3.004s"] {
            #expect(GoDuration.format(try GoDuration.parse(text)) == text)
        }
    }
}

@Suite struct ResourceKindTests {
    @Test(arguments: [
        ("Service", "Service"), ("service", "Service"), ("services", "Service"), ("SVC", "Service"), ("ns", "Namespace"),
        ("ts", "TrafficSplit"), ("trafficsplits", "TrafficSplit"), ("wl", "Workload"), ("httproute", "HTTPRoute"),
        ("links", "Link"), ("meshconfig", "MeshConfig"), ("secret", "Secret"),
    ])
    func looksUpKindsByAnyName(name: String, kind: String) {
        #expect(ResourceKind.lookup(name)?.name == kind)
    }

    @Test func unknownNamesFindNothing() {
        #expect(ResourceKind.lookup("gadget") == nil)
        #expect(ResourceKind.lookup("") == nil)
    }

    @Test func registryMatchesTheDesign() {
        #expect(ResourceKind.all.map(\.name) == [
            "Namespace", "Service", "Secret", "Workload", "TrafficSplit", "HTTPRoute", "Link", "Server",
            "AuthorizationPolicy", "MeshTLSAuthentication", "NetworkAuthentication", "MeshConfig",
        ])
        #expect(ResourceKind.all.filter { !$0.namespaced }.map(\.name) == ["Namespace", "MeshConfig"])
        #expect(ResourceKind.trafficSplit.apiVersions.count == 4)
        #expect(ResourceKind.httpRoute.preferredAPIVersion == "gateway.networking.k8s.io/v1")
    }
}

@Suite struct NameRuleTests {
    @Test func checksKubernetesNames() {
        #expect(ResourceNames.dns1123LabelProblem("podinfo-workload2") == nil)
        #expect(ResourceNames.dns1123LabelProblem("a.b") != nil)
        #expect(ResourceNames.dns1123LabelProblem("-a") != nil)
        #expect(ResourceNames.dns1123SubdomainProblem("a.b-c.d") == nil)
        #expect(ResourceNames.dns1123SubdomainProblem("a..b") != nil)
        #expect(ResourceNames.qualifiedNameProblem("mirror.starling.io/exported") == nil)
        #expect(ResourceNames.qualifiedNameProblem("a/b/c") != nil)
        #expect(ResourceNames.qualifiedNameProblem("/a") != nil)
        #expect(ResourceNames.labelValueProblem("") == nil)
        #expect(ResourceNames.labelValueProblem("v1.2_x-Y") == nil)
        #expect(ResourceNames.labelValueProblem("a b") != nil)
    }

    @Test func checksAddresses() {
        #expect(NetworkAddress.isIPv4("127.1.0.5"))
        #expect(!NetworkAddress.isIPv4("127.1.0"))
        #expect(!NetworkAddress.isIPv4("01.1.1.1"))
        #expect(NetworkAddress.isIPv6("::1"))
        #expect(NetworkAddress.isIPv6("fd00::5"))
        #expect(NetworkAddress.isIPv6("::ffff:10.0.0.1"))
        #expect(NetworkAddress.isIPv6("1:2:3:4:5:6:7:8"))
        #expect(!NetworkAddress.isIPv6("1:2:3:4:5:6:7:8:9"))
        #expect(!NetworkAddress.isIPv6("1::2::3"))
        #expect(!NetworkAddress.isIPv6("12345::"))
        #expect(NetworkAddress.splitHostPort("127.2.0.1:8086")! == ("127.2.0.1", 8086))
        #expect(NetworkAddress.splitHostPort("[fd00::1]:443")! == ("fd00::1", 443))
        #expect(NetworkAddress.splitHostPort("api.example.com:8086")! == ("api.example.com", 8086))
        #expect(NetworkAddress.splitHostPort("127.2.0.1") == nil)
        #expect(NetworkAddress.splitHostPort("fd00::1:443") == nil)
        #expect(NetworkAddress.splitHostPort("host:0") == nil)
    }

    @Test func errorDescriptionNamesEveryPart() {
        let error = ResourceError(
            .invalidValue, "expected a non-negative integer or quantity (e.g. 50 or 500m), got \"-5\"", source: "split.yaml",
            documentIndex: 1, fieldPath: "spec.backends[0].weight")
        #expect(
            error.description
                == #"split.yaml: document 2: spec.backends[0].weight: expected a non-negative integer or quantity (e.g. 50 or 500m), got "-5""#
        )
        #expect(ResourceError(.tooLarge, "too big", source: "-").description == "-: too big")
    }
}
