import StarlingAPI
import StarlingCore
import Testing

@testable import StarlingProxy
import SwiftProtobuf

/// Authority normalization, stream-message conversion and reconnect backoff, as plain values.
struct DiscoveryRecordTests {
    let web = MeshIdentity(namespace: "test", serviceAccount: "web")

    @Test(arguments: [
        ("web.test", "web.test.svc.cluster.local"),
        ("web.test:8080", "web.test.svc.cluster.local:8080"),
        ("web.test.svc:8080", "web.test.svc.cluster.local:8080"),
        ("web.test.svc.cluster.local:8080", "web.test.svc.cluster.local:8080"),
        ("Web.Test.SVC.cluster.local.:8080", "web.test.svc.cluster.local:8080"),
        ("api.example.com:443", "api.example.com:443"),
        ("example.com:80", "example.com.svc.cluster.local:80"),
        ("localhost", "localhost"),
        ("web", "web"),
    ])
    func authoritiesShareOneKey(input: String, key: String) {
        #expect(ServiceAuthority.key(input) == key)
    }

    @Test func aCustomClusterDomainIsRecognised() {
        #expect(ServiceAuthority.key("web.test.svc.east.example:80", clusterDomain: "east.example")
            == "web.test.svc.east.example:80")
        #expect(ServiceAuthority.key("web.test:80", clusterDomain: "east.example") == "web.test.svc.east.example:80")
    }

    @Test func addsRemovesAndNoEndpointsAreApplied() {
        var record = DestinationRecord()
        #expect(record.endpoints == nil)
        record.apply(.add([.test("10.0.0.1", 4143, identity: web), .test("10.0.0.2", 4143, identity: web)]), resync: true)
        #expect(record.endpoints?.endpoints.map(\.host).sorted() == ["10.0.0.1", "10.0.0.2"])
        #expect(record.endpoints?.exists == true)

        record.apply(.remove([.test("10.0.0.1", 4143)]), resync: false)
        #expect(record.endpoints?.endpoints.map(\.host) == ["10.0.0.2"])

        record.apply(.noEndpoints(exists: true), resync: false)
        #expect(record.endpoints == EndpointSet(endpoints: [], exists: true))

        record.apply(.noEndpoints(exists: false), resync: false)
        #expect(record.endpoints == EndpointSet(endpoints: [], exists: false))

        record.apply(.add([.test("10.0.0.3", 4143)]), resync: false)
        #expect(record.endpoints == EndpointSet(endpoints: [Endpoint(host: "10.0.0.3", port: 4143)], exists: true))
    }

    @Test func theFirstMessageOfANewStreamReplacesTheState() {
        var record = DestinationRecord()
        record.apply(.add([.test("10.0.0.1", 4143)]), resync: true)
        record.apply(.add([.test("10.0.0.2", 4143)]), resync: true)
        #expect(record.endpoints?.endpoints.map(\.host) == ["10.0.0.2"])
    }

    @Test func weightedAddressesBecomeEndpoints() throws {
        let addr = Starling_V1_WeightedAddr.test(
            "10.1.0.7", 4143, identity: web, opaque: true, labels: ["pod": "web-1"],
            authorityOverride: "web.test.svc.cluster.local:8080")
        let endpoint = try #require(DestinationRecord.endpoint(addr))
        #expect(endpoint.host == "10.1.0.7")
        #expect(endpoint.port == 4143)
        #expect(endpoint.identity == web)
        #expect(endpoint.opaque)
        #expect(endpoint.labels == ["pod": "web-1"])
        #expect(endpoint.authorityOverride == "web.test.svc.cluster.local:8080")

        let plain = try #require(DestinationRecord.endpoint(.test("10.1.0.8", 8080)))
        #expect(plain.identity == nil && !plain.opaque && plain.authorityOverride == nil)
    }

    @Test func anEndpointWithAnUnparsableIdentityIsSkipped() {
        var bad = Starling_V1_WeightedAddr.test("10.1.0.9", 4143)
        bad.identity = "not-an-identity"
        var record = DestinationRecord()
        let skipped = record.apply(.add([bad, .test("10.1.0.10", 4143, identity: web)]), resync: true)
        #expect(skipped.count == 1)
        #expect(record.endpoints?.endpoints.map(\.host) == ["10.1.0.10"])
    }

    @Test func profilesCarrySplitsTimeoutsAndRetryBudgets() {
        let message = Starling_V1_DestinationProfile.with {
            $0.fullyQualifiedName = "web.test.svc.cluster.local"
            $0.dstOverrides = [
                .with {
                    $0.authority = "web.test.svc.cluster.local:8080"
                    $0.weight = 50_000
                },
                .with {
                    $0.authority = "web-east.test.svc.cluster.local:8080"
                    $0.weight = 50_000
                },
            ]
            $0.timeoutMs = 2500
            $0.retryBudget = .with {
                $0.retryRatio = 0.5
                $0.minRetriesPerSecond = 3
            }
            $0.opaqueProtocol = true
        }
        let profile = DestinationRecord.profile(message)
        #expect(profile.fullyQualifiedName == "web.test.svc.cluster.local")
        #expect(profile.backends == [
            .init(authority: "web.test.svc.cluster.local:8080", weight: 50_000),
            .init(authority: "web-east.test.svc.cluster.local:8080", weight: 50_000),
        ])
        #expect(profile.timeout == .milliseconds(2500))
        #expect(profile.retryRatio == 0.5)
        #expect(profile.minRetriesPerSecond == 3)
        #expect(profile.opaque)
    }

    @Test func aProfileWithoutTimeoutOrBudgetGetsTheDefaults() {
        let profile = DestinationRecord.profile(.with { $0.fullyQualifiedName = "web.test.svc.cluster.local" })
        #expect(profile == ServiceProfile(fullyQualifiedName: "web.test.svc.cluster.local"))
    }

    @Test func reconnectBackoffGrowsCapsAndResets() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(500), jitter: 0)
        let waits = (0..<5).map { _ in backoff.failed(random: 0.5) }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500), .milliseconds(500)])
        backoff.succeeded()
        #expect(backoff.failed(random: 0.5) == .milliseconds(100))

        var jittered = ReconnectBackoff(initial: .seconds(1), jitter: 0.2)
        #expect(jittered.failed(random: 0) == .milliseconds(800))
    }
}
