import Testing

@testable import StarlingProxy

struct SplitTests {
    let service = "podinfo.test.svc.cluster.local:9898"
    let local = "podinfo.test.svc.cluster.local:9898"
    let remote = "podinfo-workload2.test.svc.cluster.local:9898"

    func splitProfile(_ backends: [(String, UInt64)]) -> ServiceProfile {
        ServiceProfile(
            fullyQualifiedName: "podinfo.test.svc.cluster.local",
            backends: backends.map { ServiceProfile.Backend(authority: $0.0, weight: $0.1) })
    }

    func share(_ picker: MeshPicker, picks: Int) async throws -> [String: Double] {
        var counts: [String: Int] = [:]
        for _ in 0..<picks {
            let pick = try await picker.pick(service)
            counts[pick.backend, default: 0] += 1
            pick.complete(.success(latency: .milliseconds(1)))
        }
        return counts.mapValues { Double($0) / Double(picks) }
    }

    @Test func weightsSplitTrafficPerRequest() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 80_000), (remote, 20_000)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        discovery.setEndpoints([balanceEndpoint(2)], for: remote)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let shares = try await share(picker, picks: 10_000)
        #expect(abs((shares[local] ?? 0) - 0.8) <= 0.02)
        #expect(abs((shares[remote] ?? 0) - 0.2) <= 0.02)
    }

    @Test func backendWithoutEndpointsGivesItsShareToTheOthers() async throws {
        let discovery = BalanceFakeDiscovery()
        let third = "podinfo-workload3.test.svc.cluster.local:9898"
        discovery.setProfile(splitProfile([(local, 50_000), (remote, 30_000), (third, 20_000)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        discovery.setEndpoints([], for: remote)
        discovery.setEndpoints([balanceEndpoint(3)], for: third)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let shares = try await share(picker, picks: 10_000)
        #expect(shares[remote] == nil)
        #expect(abs((shares[local] ?? 0) - 5.0 / 7.0) <= 0.02)
        #expect(abs((shares[third] ?? 0) - 2.0 / 7.0) <= 0.02)
    }

    @Test func backendThatDoesNotExistGivesItsShareToTheOthers() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 50_000), (remote, 50_000)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let shares = try await share(picker, picks: 200)
        #expect(shares[local] == 1)
    }

    @Test func splitWithNoEndpointsAnywhereFailsWithNoEndpoints() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 50_000), (remote, 50_000)]), for: service)
        discovery.setEndpoints([], for: local)
        discovery.setEndpoints([], for: remote)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let error = await #expect(throws: ProxyError.self) { try await picker.pick(service) }
        #expect(error?.code == .noEndpoints)
    }

    @Test func backendWhoseEndpointsAreAllEjectedShiftsItsShare() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 50_000), (remote, 50_000)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        discovery.setEndpoints([balanceEndpoint(2)], for: remote)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        var remoteFailures = 0
        while remoteFailures < 7 {
            let pick = try await picker.pick(service)
            if pick.backend == remote {
                remoteFailures += 1
                pick.complete(.failure(latency: .milliseconds(1)))
            } else {
                pick.complete(.success(latency: .milliseconds(1)))
            }
        }
        let shares = try await share(picker, picks: 200)
        #expect(shares[local] == 1)
    }

    @Test func aPickAvoidingTheRemoteGatewayGoesToTheLocalBackend() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 50_000), (remote, 50_000)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        discovery.setEndpoints([balanceEndpoint(2)], for: remote)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        for _ in 0..<200 {
            let pick = try await picker.pick(service, avoiding: [balanceEndpoint(2)])
            #expect(pick.backend == local)
            #expect(pick.endpoint == balanceEndpoint(1))
            pick.complete(.success(latency: .milliseconds(1)))
            // The synchronous path makes the same choice.
            let now = try #require(picker.pickNow(service, avoiding: [balanceEndpoint(2)])).get()
            #expect(now.backend == local)
            now.complete(.success(latency: .milliseconds(1)))
        }
        let error = await #expect(throws: ProxyError.self) {
            try await picker.pick(service, avoiding: [balanceEndpoint(1), balanceEndpoint(2)])
        }
        #expect(error?.code == .noEndpoints)
    }

    @Test func zeroWeightBackendTakesOverWhenTheOnlyWeightedOneIsEmpty() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(splitProfile([(local, 100_000), (remote, 0)]), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: local)
        discovery.setEndpoints([balanceEndpoint(2)], for: remote)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        #expect(try await share(picker, picks: 500)[local] == 1)
        discovery.setEndpoints([], for: local)
        #expect(try await share(picker, picks: 50)[remote] == 1)
    }

    @Test func weightedChoiceSkipsUnavailableCandidates() {
        var random = BalanceSeededRandom(seed: 7)
        var counts = [0, 0, 0]
        for _ in 0..<3_000 {
            let index = WeightedChoice.choose(weights: [1, 5, 1], isAvailable: { $0 != 1 }, using: &random)
            counts[index ?? 1] += 1
        }
        #expect(counts[1] == 0)
        #expect(abs(counts[0] - counts[2]) < 300)
        #expect(WeightedChoice.choose(weights: [1, 2], isAvailable: { _ in false }, using: &random) == nil)
    }
}
