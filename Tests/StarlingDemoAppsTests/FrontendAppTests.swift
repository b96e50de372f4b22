import Foundation
import Testing

@testable import StarlingDemoApps

struct FrontendAppTests {
    func state(_ port: Int) async throws -> [String: Any] {
        let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/api/state")
        #expect(response.status == 200)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
    }

    /// Polls the frontend's state until `done` holds or `limit` passes; returns the last state.
    func waitForState(
        _ port: Int, limit: Duration = .seconds(6), until done: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + limit
        var last = try await state(port)
        while !done(last), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            last = try await state(port)
        }
        return last
    }

    func frontend(upstream: String, proxy: DemoHTTPClient.Address? = nil, interval: Duration = .seconds(1)) -> FrontendApp {
        FrontendApp(
            configuration: .init(
                host: "127.0.0.1", port: 0, upstream: upstream, proxy: proxy, interval: interval, timeout: .seconds(2)),
            logger: demoTestLogger)
    }

    func tallyCount(_ state: [String: Any], cluster: String) -> Int {
        let rows = state["tally"] as? [[String: Any]] ?? []
        return rows.filter { $0["cluster"] as? String == cluster }.compactMap { $0["count"] as? Int }.reduce(0, +)
    }

    @Test func countsAnswersFromTheUpstreamCluster() async throws {
        try await withRunningDemoApp(podinfo(cluster: "workload2", instance: "podinfo-b").run) { podinfoPort in
            let app = frontend(upstream: "http://127.0.0.1:\(podinfoPort)/")
            try await withRunningDemoApp(app.run) { port in
                try await Task.sleep(for: .milliseconds(2_500))
                let state = try await waitForState(port) { tallyCount($0, cluster: "workload2") >= 2 }
                #expect(tallyCount(state, cluster: "workload2") >= 2)
                #expect(state["errors"] as? Int == 0)
                let last = try #require(state["last"] as? [String: Any])
                #expect(last["cluster"] as? String == "workload2")
                #expect(last["instance"] as? String == "podinfo-b")
                #expect(last["message"] as? String == "hello from workload1")
                let recent = try #require(state["recent"] as? [[String: Any]])
                #expect(recent.count >= 2)
                let rows = try #require(state["tally"] as? [[String: Any]])
                #expect(rows.first?["percent"] as? Double == 100)
            }
        }
    }

    @Test func callsThroughTheProxyInAbsoluteForm() async throws {
        // podinfo stands in for the mesh's outbound proxy: the upstream name does not resolve,
        // so answers arrive only if the frontend sends `GET http://podinfo.test:9898/` to it.
        try await withRunningDemoApp(podinfo(cluster: "workload1").run) { proxyPort in
            let app = frontend(
                upstream: "http://podinfo.test.invalid:9898/", proxy: DemoHTTPClient.Address(host: "127.0.0.1", port: proxyPort),
                interval: .milliseconds(200))
            try await withRunningDemoApp(app.run) { port in
                let state = try await waitForState(port) { tallyCount($0, cluster: "workload1") >= 2 }
                #expect(tallyCount(state, cluster: "workload1") >= 2)
                #expect((state["via"] as? String)?.contains("127.0.0.1:\(proxyPort)") == true)
            }
        }
    }

    @Test func pageContainsThePollingScript() async throws {
        let app = frontend(upstream: "http://127.0.0.1:9/")
        try await withRunningDemoApp(app.run) { port in
            let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/")
            #expect(response.status == 200)
            #expect(response.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(response.body.contains("fetch(\"/api/state\""))
            #expect(response.body.contains("setInterval(poll, 1000)"))
            #expect(!response.body.contains("<script src"))
            #expect(!response.body.contains("<link"))
        }
    }

    @Test func countsErrorsWhenTheUpstreamIsDown() async throws {
        // A port that was just bound and released: nothing listens there.
        let closedPort = try await withRunningDemoApp(podinfo().run) { $0 }
        let app = frontend(upstream: "http://127.0.0.1:\(closedPort)/", interval: .milliseconds(200))
        try await withRunningDemoApp(app.run) { port in
            let state = try await waitForState(port) { ($0["errors"] as? Int ?? 0) >= 2 }
            #expect((state["errors"] as? Int ?? 0) >= 2)
            #expect(tallyCount(state, cluster: "error") >= 2)
            let last = try #require(state["last"] as? [String: Any])
            #expect(last["cluster"] as? String == "error")
            #expect(last["error"] is String)
        }
    }

    @Test func proxyErrorHeaderNamesTheError() {
        let response = DemoHTTPClient.Response(status: 503, headers: ["starling-error": "no-endpoints"], body: "")
        let answer = FrontendApp.answer(.success(response), sequence: 1, elapsed: 0, latency: 1)
        #expect(answer.cluster == "error")
        #expect(answer.instance == "no-endpoints")
        #expect(answer.error == "503 no-endpoints")
        let plain = FrontendApp.answer(
            .success(.init(status: 500, headers: [:], body: "")), sequence: 2, elapsed: 0, latency: 1)
        #expect(plain.instance == "HTTP 500")
        let garbage = FrontendApp.answer(
            .success(.init(status: 200, headers: [:], body: "<html>")), sequence: 3, elapsed: 0, latency: 1)
        #expect(garbage.isError)
    }

    @Test func tallyKeepsTheLastTwentyAndPercentages() {
        var tally = FrontendTally(recentLimit: 20)
        for sequence in 1...30 {
            tally.record(
                .init(
                    sequence: sequence, elapsed: Double(sequence), cluster: sequence % 3 == 0 ? "b" : "a",
                    instance: "i", latencyMilliseconds: 1))
        }
        #expect(tally.recent.count == 20)
        #expect(tally.recent.first?.sequence == 30)
        let json = try? JSONSerialization.jsonObject(with: Data(tally.json(upstream: "u", via: "v").utf8)) as? [String: Any]
        let rows = json?["tally"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["count"] as? Int } == [20, 10])
        #expect(rows.map { $0["percent"] as? Double } == [66.7, 33.3])
    }
}
