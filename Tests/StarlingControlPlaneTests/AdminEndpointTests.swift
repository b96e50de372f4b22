import Foundation
import StarlingAPI
import SwiftProtobuf
import Testing

@Suite(.timeLimit(.minutes(1)))
struct AdminEndpointTests {
    @Test func readyAndLiveAnswer200() async throws {
        try await withController { controller in
            let ready = try await httpGet(port: controller.adminPort, path: "/ready")
            #expect(ready.status == 200)
            #expect(ready.headers["content-type"]?.hasPrefix("text/plain") == true)
            let live = try await httpGet(port: controller.adminPort, path: "/live")
            #expect(live.status == 200)
            #expect(live.body.contains("live"))
        }
    }

    @Test func metricsAnswer200WithPrometheusText() async throws {
        try await withController { controller in
            // No metrics backend is bootstrapped in tests, so the body may be empty; the
            // starting command's backend is what fills it.
            let metrics = try await httpGet(port: controller.adminPort, path: "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(metrics.headers["content-length"] == "\(metrics.body.utf8.count)")
        }
    }

    @Test func metricsServesWhatTheControllersMetricsSourceReturns() async throws {
        // The controller's `metrics` closure is what /metrics serves.
        try await withController(metrics: { "# TYPE starling_controller_requests_total counter\n" }) { controller in
            let metrics = try await httpGet(port: controller.adminPort, path: "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("starling_controller_requests_total"))
        }
    }

    @Test func unknownPathIs404() async throws {
        try await withController { controller in
            let response = try await httpGet(port: controller.adminPort, path: "/nope")
            #expect(response.status == 404)
            let withQuery = try await httpGet(port: controller.adminPort, path: "/ready?verbose=1")
            #expect(withQuery.status == 200)
        }
    }

    @Test(arguments: 1...20)
    func cancellingTheControllerAfterAnRPCStopsItWithoutAnError(round: Int) async throws {
        try await withController(strictShutdown: true) { controller in
            try await controller.withClients { api in
                _ = try await api.list("Namespace")
            }
        }
    }

    @Test func cancellingTheControllerWithAnOpenStreamStopsItWithoutAnError() async throws {
        try await withController(strictShutdown: true) { controller in
            try await controller.withClients { api in
                let updates = StreamInbox<Starling_V1_Update> { handler in
                    try await api.destination.get(.with { $0.path = "web.test:80" }, onResponse: handler)
                }
                _ = try await updates.next()
                updates.cancel()
            }
        }
    }

    @Test func stoppingTheControllerClosesItsPorts() async throws {
        let ports = try await withController { controller in (controller.apiPort, controller.adminPort) }
        await #expect(throws: (any Error).self) { _ = try await httpGet(port: ports.1, path: "/live") }
    }
}
