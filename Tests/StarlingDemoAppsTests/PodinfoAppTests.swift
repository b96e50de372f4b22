import Foundation
import Testing

@testable import StarlingDemoApps

struct PodinfoAppTests {
    @Test func rootAnswersJSONNamingInstanceMessageClusterAndClient() async throws {
        let app = podinfo()
        try await withRunningDemoApp(app.run) { port in
            let response = try await DemoHTTPClient.get(
                "http://127.0.0.1:\(port)/", headers: [("starling-client-id", "web.test.serviceaccount.identity.starling.cluster.local")])
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "application/json")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
            #expect(json["hostname"] as? String == "podinfo-1")
            #expect(json["message"] as? String == "hello from workload1")
            #expect(json["cluster"] as? String == "workload1")
            #expect(json["version"] is String)
            #expect(json["client"] as? String == "web.test.serviceaccount.identity.starling.cluster.local")
        }
    }

    @Test func clientIsNullWithoutTheMeshHeader() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
            #expect(json["client"] is NSNull)
        }
    }

    @Test func healthAndReadinessAnswerOK() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            for path in ["/healthz", "/readyz"] {
                let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)\(path)")
                #expect(response.status == 200)
                #expect(response.body == #"{"status": "OK"}"#)
            }
        }
    }

    @Test func statusPathAnswersWithThatStatus() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            for code in [200, 404, 500, 503] {
                let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/status/\(code)")
                #expect(response.status == code)
            }
            for bad in ["/status/abc", "/status/99", "/status/600"] {
                let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)\(bad)")
                #expect(response.status == 400)
                #expect(response.body.contains("200 to 599"))
            }
        }
    }

    @Test func delayPathAnswersAfterThatLong() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            let started = ContinuousClock.now
            let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/delay/0.3")
            #expect(response.status == 200)
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            let bad = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/delay/soon")
            #expect(bad.status == 400)
        }
        #expect(PodinfoApp.delay(in: "/delay/3600") == PodinfoApp.maximumDelay)
        #expect(PodinfoApp.delay(in: "/delay/-1") == nil)
    }

    @Test func unknownPathIsNotFoundJSON() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            let response = try await DemoHTTPClient.get("http://127.0.0.1:\(port)/nope?x=1")
            #expect(response.status == 404)
            #expect(response.headers["content-type"] == "application/json")
            #expect(response.body.contains("/nope"))
        }
    }

    @Test func absoluteFormRequestIsServedByPath() async throws {
        // The frontend sends absolute-form requests to a proxy; podinfo standing in for the proxy
        // shows they arrive as `GET http://podinfo.test:9898/healthz`.
        try await withRunningDemoApp(podinfo().run) { port in
            let response = try await DemoHTTPClient.get(
                "http://podinfo.test:9898/healthz", via: DemoHTTPClient.Address(host: "127.0.0.1", port: port))
            #expect(response.status == 200)
        }
    }

    @Test func servesConcurrentClients() async throws {
        try await withRunningDemoApp(podinfo().run) { port in
            // Concurrent clients on separate connections are all served.
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await DemoHTTPClient.get("http://127.0.0.1:\(port)/").status }
                }
                for try await status in group { #expect(status == 200) }
            }
        }
    }
}
