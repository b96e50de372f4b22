import Testing

@testable import StarlingProxy

struct BalancePickerTests {
    let service = "podinfo.test.svc.cluster.local:9898"

    @Test func unknownServiceIsRefusedWithUnknownService() async throws {
        let discovery = BalanceFakeDiscovery()
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let error = await #expect(throws: ProxyError.self) { try await picker.pick(service) }
        #expect(error?.code == .unknownService)
        #expect(error?.httpStatus == 503)
    }

    @Test func serviceWithoutEndpointsIsRefusedWithNoEndpoints() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setEndpoints([], for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let error = await #expect(throws: ProxyError.self) { try await picker.pick(service) }
        #expect(error?.code == .noEndpoints)
    }

    @Test func pickCarriesTheProfileTimeoutAndTheServiceAsBackend() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(ServiceProfile(fullyQualifiedName: "podinfo.test.svc.cluster.local", timeout: .seconds(3)), for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        let pick = try await picker.pick(service)
        #expect(pick.endpoint == balanceEndpoint(1))
        #expect(pick.backend == service)
        #expect(pick.timeout == .seconds(3))
        pick.complete(.success(latency: .milliseconds(1)))
    }

    @Test func aPickAvoidsTheEndpointsTheRequestFailedToConnectTo() async throws {
        let discovery = BalanceFakeDiscovery()
        let endpoints = [balanceEndpoint(1), balanceEndpoint(2), balanceEndpoint(3)]
        discovery.setEndpoints(endpoints, for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        var seen: Set<Endpoint> = []
        for _ in 0..<100 {
            let pick = try await picker.pick(service, avoiding: [endpoints[0]])
            #expect(pick.endpoint != endpoints[0])
            seen.insert(pick.endpoint)
            pick.complete(.success(latency: .milliseconds(1)))
        }
        #expect(seen == [endpoints[1], endpoints[2]])
        let last = try await picker.pick(service, avoiding: [endpoints[0], endpoints[2]])
        #expect(last.endpoint == endpoints[1])
        last.complete(.abandoned)
        let error = await #expect(throws: ProxyError.self) { try await picker.pick(service, avoiding: endpoints) }
        #expect(error?.code == .noEndpoints)
    }

    @Test func connectAttemptsStopAtTheLimitOrTheDeadline() {
        let start = ContinuousClock.now
        var attempts = ConnectAttempts(started: start, timeout: .seconds(10))
        let again = (1...3).map { attempts.failed(balanceEndpoint($0), now: start) }
        #expect(again == [true, true, false])
        #expect(attempts.avoided == [balanceEndpoint(1), balanceEndpoint(2), balanceEndpoint(3)])
        var late = ConnectAttempts(started: start, timeout: .seconds(1))
        let lateAgain = late.failed(balanceEndpoint(1), now: start + .seconds(2))
        #expect(!lateAgain)
        #expect(late.remaining(now: start + .seconds(2)) == .zero)
        #expect(late.remaining(now: start + .milliseconds(250)) == .milliseconds(750))
    }

    @Test func powerOfTwoChoicesPrefersTheFasterEndpoint() async throws {
        let discovery = BalanceFakeDiscovery()
        let fast = balanceEndpoint(1)
        let slow = balanceEndpoint(2)
        discovery.setEndpoints([fast, slow], for: service)
        let clock = BalanceManualClock()
        let picker = makeBalancePicker(discovery, clock: clock)
        var fastPicks = 0
        let total = 1_000
        for _ in 0..<total {
            let pick = try await picker.pick(service)
            let latency: Duration = pick.endpoint == fast ? .milliseconds(1) : .milliseconds(50)
            if pick.endpoint == fast { fastPicks += 1 }
            clock.advance(by: latency)
            pick.complete(.success(latency: latency))
        }
        #expect(Double(fastPicks) / Double(total) > 0.8)
    }

    @Test func pendingRequestsRaiseTheCost() async throws {
        let discovery = BalanceFakeDiscovery()
        let endpoints = [balanceEndpoint(1), balanceEndpoint(2)]
        discovery.setEndpoints(endpoints, for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        // Nothing completes, so equal latencies leave only the requests in flight to decide:
        // each pick must go to the endpoint with fewer of them.
        var held: [Pick] = []
        var counts: [Endpoint: Int] = [:]
        for _ in 0..<20 {
            let pick = try await picker.pick(service)
            counts[pick.endpoint, default: 0] += 1
            let difference = abs((counts[endpoints[0]] ?? 0) - (counts[endpoints[1]] ?? 0))
            #expect(difference <= 1)
            held.append(pick)
        }
        #expect(counts[endpoints[0]] == 10)
        #expect(counts[endpoints[1]] == 10)
        for pick in held { pick.complete(.abandoned) }
    }

    @Test func failureAccrualEjectsProbesOnceAndRestores() async throws {
        let discovery = BalanceFakeDiscovery()
        let bad = balanceEndpoint(1)
        let good = balanceEndpoint(2)
        discovery.setEndpoints([bad, good], for: service)
        let clock = BalanceManualClock()
        let picker = makeBalancePicker(discovery, clock: clock)

        // Fail every request to `bad` until it has failed 7 times in a row.
        var badFailures = 0
        var attempts = 0
        while badFailures < 7 {
            attempts += 1
            try #require(attempts < 1_000)
            let pick = try await picker.pick(service)
            if pick.endpoint == bad {
                badFailures += 1
                pick.complete(.failure(latency: .milliseconds(1)))
            } else {
                pick.complete(.success(latency: .milliseconds(5)))
            }
        }
        // Ejected: nothing goes there during the backoff.
        for _ in 0..<50 {
            let pick = try await picker.pick(service)
            #expect(pick.endpoint == good)
            pick.complete(.success(latency: .milliseconds(5)))
        }
        // After the backoff exactly one probe goes there.
        clock.advance(by: .seconds(1))
        let probe = try await picker.pick(service)
        #expect(probe.endpoint == bad)
        for _ in 0..<20 {
            let pick = try await picker.pick(service)
            #expect(pick.endpoint == good)
            pick.complete(.success(latency: .milliseconds(5)))
        }
        // A successful probe restores it: it takes traffic again.
        probe.complete(.success(latency: .milliseconds(1)))
        var badPicks = 0
        for _ in 0..<50 {
            let pick = try await picker.pick(service)
            if pick.endpoint == bad { badPicks += 1 }
            pick.complete(.success(latency: .milliseconds(1)))
        }
        #expect(badPicks > 0)
    }

    @Test func failedProbeEjectsAgainForLonger() async throws {
        let discovery = BalanceFakeDiscovery()
        let bad = balanceEndpoint(1)
        let good = balanceEndpoint(2)
        discovery.setEndpoints([bad, good], for: service)
        let clock = BalanceManualClock()
        let configuration = MeshPicker.Configuration(
            failureAccrual: .init(consecutiveFailures: 1, minimumBackoff: .seconds(1), jitter: 0))
        let picker = makeBalancePicker(discovery, clock: clock, configuration: configuration)
        var ejected = false
        while !ejected {
            let pick = try await picker.pick(service)
            ejected = pick.endpoint == bad
            pick.complete(ejected ? .failure(latency: .milliseconds(1)) : .success(latency: .milliseconds(5)))
        }
        clock.advance(by: .seconds(1))
        let probe = try await picker.pick(service)
        #expect(probe.endpoint == bad)
        probe.complete(.failure(latency: .milliseconds(1)))
        // The second backoff is 2 s: after 1 s it is still ejected, after 2 s it is probed.
        clock.advance(by: .seconds(1))
        for _ in 0..<20 {
            let pick = try await picker.pick(service)
            #expect(pick.endpoint == good)
            pick.complete(.success(latency: .milliseconds(5)))
        }
        clock.advance(by: .seconds(1))
        let secondProbe = try await picker.pick(service)
        #expect(secondProbe.endpoint == bad)
        secondProbe.complete(.abandoned)
    }

    @Test func allEndpointsEjectedStillGetTraffic() async throws {
        let discovery = BalanceFakeDiscovery()
        let only = balanceEndpoint(1)
        discovery.setEndpoints([only], for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        for _ in 0..<7 {
            let pick = try await picker.pick(service)
            pick.complete(.failure(latency: .milliseconds(1)))
        }
        let pick = try await picker.pick(service)
        #expect(pick.endpoint == only)
        pick.complete(.abandoned)
    }

    @Test func endpointStateIsDroppedWhenDiscoveryDropsTheEndpoint() async throws {
        let discovery = BalanceFakeDiscovery()
        let flaky = balanceEndpoint(1)
        let steady = balanceEndpoint(2)
        discovery.setEndpoints([flaky, steady], for: service)
        let configuration = MeshPicker.Configuration(failureAccrual: .init(consecutiveFailures: 1))
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock(), configuration: configuration)
        var stale: Pick?
        while stale == nil {
            let pick = try await picker.pick(service)
            if pick.endpoint == flaky {
                pick.complete(.failure(latency: .milliseconds(1)))
                stale = try await picker.pick(service)  // goes to `steady`; kept open across the change
            } else {
                pick.complete(.success(latency: .milliseconds(1)))
            }
        }
        // `flaky` is ejected; discovery drops it and brings it back: it starts afresh.
        discovery.setEndpoints([steady], for: service)
        _ = try await picker.pick(service).complete(.abandoned)
        discovery.setEndpoints([flaky, steady], for: service)
        var flakyPicks = 0
        for _ in 0..<50 {
            let pick = try await picker.pick(service)
            if pick.endpoint == flaky { flakyPicks += 1 }
            pick.complete(.success(latency: .milliseconds(1)))
        }
        #expect(flakyPicks > 0)
        stale?.complete(.success(latency: .milliseconds(1)))
    }

    @Test func mayRetryFollowsTheServiceRetryBudget() async throws {
        let discovery = BalanceFakeDiscovery()
        discovery.setProfile(
            ServiceProfile(fullyQualifiedName: "podinfo.test.svc.cluster.local", retryRatio: 0.2, minRetriesPerSecond: 0),
            for: service)
        discovery.setEndpoints([balanceEndpoint(1)], for: service)
        let picker = makeBalancePicker(discovery, clock: BalanceManualClock())
        var picks: [Pick] = []
        for _ in 0..<50 { picks.append(try await picker.pick(service)) }
        let allowed = picks.filter { $0.mayRetry() }.count
        #expect(allowed == 10)
        for pick in picks { pick.complete(.success(latency: .milliseconds(1))) }
    }
}
