import Foundation
import StarlingAPI
import StarlingCore
import StarlingProxy
import SwiftProtobuf
import Testing

/// The destination client against a fake Destination service on a real gRPC server.
@Suite(.timeLimit(.minutes(1)))
struct DiscoveryClientTests {
    let credentials: FakeControllerCredentials
    let web = MeshIdentity(namespace: "test", serviceAccount: "web")
    let key = "web.test.svc.cluster.local:8080"

    init() throws {
        credentials = try FakeControllerCredentials()
    }

    private func discovery(
        port: Int, firstAnswerTimeout: Duration = .seconds(2), idleTimeout: Duration = .seconds(600)
    ) -> DestinationClient {
        DestinationClient(
            configuration: .init(
                controller: credentials.api(port: port, token: "proxy-token"), firstAnswerTimeout: firstAnswerTimeout,
                idleTimeout: idleTimeout,
                backoff: ReconnectBackoff(initial: .milliseconds(50), maximum: .milliseconds(300))),
            logger: controlPlaneTestLogger)
    }

    private func split() -> Starling_V1_DestinationProfile {
        .with {
            $0.fullyQualifiedName = "web.test.svc.cluster.local"
            $0.dstOverrides = [
                .with {
                    $0.authority = key
                    $0.weight = 50_000
                },
                .with {
                    $0.authority = "web-west.test.svc.cluster.local:8080"
                    $0.weight = 50_000
                },
            ]
            $0.timeoutMs = 3000
        }
    }

    @Test func firstReadsWaitForTheAnswerAndAllSpellingsShareOneStream() async throws {
        let service = FakeDestinationService()
        service.append(key, .add([.test("10.0.0.1", 4143, identity: web), .test("10.0.0.2", 4143, identity: web)]))
        service.append(key, split())
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port)
        let running = Task { try await client.run() }
        defer { running.cancel() }

        let endpoints = try await client.endpoints("web.test:8080")
        #expect(endpoints.exists)
        #expect(endpoints.endpoints == [
            Endpoint(host: "10.0.0.1", port: 4143, identity: web), Endpoint(host: "10.0.0.2", port: 4143, identity: web),
        ])
        let profile = try await client.profile("web.test.svc.cluster.local:8080")
        #expect(profile.backends.map(\.authority) == [key, "web-west.test.svc.cluster.local:8080"])
        #expect(profile.backends.map(\.weight) == [50_000, 50_000])
        #expect(profile.timeout == .seconds(3))
        _ = try await client.endpoints("web.test.svc:8080")
        _ = try await client.profile("WEB.test.svc.cluster.local.:8080")

        #expect(service.requests.sorted() == ["Get \(key)", "GetProfile \(key)"])
        await controller.stop()
    }

    @Test func addsRemovesAndNoEndpointsReachTheCache() async throws {
        let service = FakeDestinationService()
        service.append(key, .add([.test("10.0.0.1", 4143, identity: web)]))
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port)
        let running = Task { try await client.run() }
        defer { running.cancel() }

        #expect(try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.1"])
        let changes = client.changes(of: key)
        let before = client.version(of: key)

        service.append(key, .add([.test("10.0.0.2", 4143, identity: web, opaque: true)]))
        service.append(key, .remove([.test("10.0.0.1", 4143)]))
        try await eventually("the add and the removal") {
            try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.2"]
        }
        #expect(try await client.endpoints(key).endpoints.first?.opaque == true)
        #expect(client.version(of: key) > before)
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next() != nil, "observers hear about the change")

        service.append(key, .noEndpoints(exists: true))
        try await eventually("no endpoints") { try await client.endpoints(key) == EndpointSet(endpoints: [], exists: true) }
        service.append(key, .noEndpoints(exists: false))
        try await eventually("the service is gone") { try await client.endpoints(key).exists == false }
        await controller.stop()
    }

    @Test func anUnansweredAuthorityFailsAfterTheFirstAnswerTimeout() async throws {
        let controller = try await FakeController.start([FakeDestinationService()], credentials: credentials)
        let client = discovery(port: controller.port, firstAnswerTimeout: .milliseconds(300))
        let running = Task { try await client.run() }
        defer { running.cancel() }

        let clock = ContinuousClock()
        let started = clock.now
        let error = await #expect(throws: ProxyError.self) { try await client.endpoints("silent.test:80") }
        #expect(error?.code == .discoveryUnavailable)
        #expect(error?.message.contains("silent.test.svc.cluster.local:80") == true)
        #expect(clock.now - started < .seconds(2))
        await controller.stop()
    }

    @Test func anAuthorityTheAPIRefusesDoesNotExist() async throws {
        let service = FakeDestinationService(invalid: ["api.example.com:443"])
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port)
        let running = Task { try await client.run() }
        defer { running.cancel() }

        #expect(try await client.endpoints("api.example.com:443") == EndpointSet(endpoints: [], exists: false))
        #expect(try await client.profile("api.example.com:443").backends.isEmpty)
        await controller.stop()
    }

    @Test func cachedAnswersOutliveTheControllerAndReconnectionPicksUpChanges() async throws {
        let service = FakeDestinationService()
        service.append(key, .add([.test("10.0.0.1", 4143, identity: web)]))
        service.append(key, split())
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port)
        let running = Task { try await client.run() }
        defer { running.cancel() }
        #expect(try await client.endpoints(key).endpoints.count == 1)
        #expect(try await client.profile(key).backends.count == 2)

        await controller.stop()
        for _ in 0..<10 {
            #expect(try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.1"])
            #expect(try await client.profile(key).backends.count == 2)
            try await Task.sleep(for: .milliseconds(100))
        }

        // The controller comes back with another state; the re-opened streams replace the cache.
        let restartedService = FakeDestinationService()
        restartedService.append(key, .add([.test("10.0.0.9", 4143, identity: web)]))
        restartedService.append(key, .with { $0.fullyQualifiedName = "web.test.svc.cluster.local" })
        let restarted = try await FakeController.start([restartedService], credentials: credentials, port: controller.port)
        try await eventually(within: .seconds(8), "the restarted controller's endpoints") {
            try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.9"]
        }
        try await eventually("the restarted controller's profile") { try await client.profile(key).backends.isEmpty }
        await restarted.stop()
    }

    @Test func aReopenedStreamResumesFromItsLastPositionAndKeepsAConfirmedState() async throws {
        let service = FakeDestinationService()
        var first = Starling_V1_Update.add([.test("10.0.0.1", 4143, identity: web)])
        first.version = 7
        first.digest = Data(repeating: 0xAB, count: 32)
        service.append(key, first)
        let firstProfile = Starling_V1_DestinationProfile.with {
            $0.fullyQualifiedName = "web.test.svc.cluster.local"
            $0.dstOverrides = [.with { $0.authority = "web-v2.test.svc.cluster.local:80"; $0.weight = 1000 }]
            $0.version = 7
            $0.digest = Data(repeating: 0xCD, count: 32)
        }
        service.append(key, firstProfile)
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port)
        let running = Task { try await client.run() }
        defer { running.cancel() }
        #expect(try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.1"])
        try await eventually("the first profile") { try await client.profile(key).backends.count == 1 }
        await controller.stop()

        // Another replica: it confirms the state the proxy holds, then sends a change.
        let replica = FakeDestinationService()
        replica.append(key, Starling_V1_Update.with {
            $0.resumed = .init()
            $0.version = 9
            $0.digest = first.digest
        })
        replica.append(key, Starling_V1_DestinationProfile.with {
            $0.resumed = true
            $0.version = 9
            $0.digest = firstProfile.digest
        })
        let restarted = try await FakeController.start([replica], credentials: credentials, port: controller.port)
        try await eventually(within: .seconds(8), "the stream resumed on the other replica") { !replica.resumes.isEmpty }
        let resume = try #require(replica.resumes.first)
        #expect(resume.resumeVersion == 7)
        #expect(resume.resumeDigest == first.digest)
        #expect(try await client.endpoints(key).endpoints.map(\.host) == ["10.0.0.1"], "Resumed keeps the state")
        try await eventually(within: .seconds(8), "the profile stream resumed too") { !replica.profileResumes.isEmpty }
        let profileResume = try #require(replica.profileResumes.first)
        #expect(profileResume.resumeVersion == 7)
        #expect(profileResume.resumeDigest == firstProfile.digest)
        #expect(try await client.profile(key).backends.map(\.authority) == ["web-v2.test.svc.cluster.local:80"], "a confirmed profile is kept")
        replica.append(key, .add([.test("10.0.0.2", 4143, identity: web)]))
        try await eventually("the change after the resume is applied to the kept state") {
            try await client.endpoints(key).endpoints.map(\.host).sorted() == ["10.0.0.1", "10.0.0.2"]
        }
        await restarted.stop()
    }

    @Test func idleAuthoritiesAreDroppedAndReopenedOnUse() async throws {
        let service = FakeDestinationService()
        service.append(key, .add([.test("10.0.0.1", 4143)]))
        let controller = try await FakeController.start([service], credentials: credentials)
        let client = discovery(port: controller.port, idleTimeout: .milliseconds(200))
        let running = Task { try await client.run() }
        defer { running.cancel() }

        _ = try await client.endpoints(key)
        #expect(client.version(of: key) > 0)
        try await eventually("eviction") { client.version(of: key) == 0 }
        #expect(try await client.endpoints(key).endpoints.count == 1)
        #expect(service.requests.filter { $0 == "Get \(key)" }.count == 2)
        await controller.stop()
    }
}
