import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import SwiftProtobuf
import Testing

#if canImport(Glibc)
import Glibc
#endif

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

    /// Prometheus HTTP service discovery: the controller itself, and each workload registered
    /// with an admin port (one without is not listed: nothing to scrape), with bounded labels.
    @Test func prometheusTargetsListTheControllerAndEveryRegisteredProxy() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            try await controller.withClients(.token(token)) { api in
                for (name, address, admin) in [("web-1", "127.0.0.61", UInt32(4191)), ("web-2", "127.0.0.62", UInt32(0))] {
                    _ = try await api.mesh.register(.with {
                        $0.name = name
                        $0.address = address
                        $0.adminPort = admin
                        $0.ports = [.with { $0.name = "http"; $0.port = 4143; $0.appPort = 8080 }]
                        $0.labels = ["app": "web", "team": "payments"]
                    })
                }
            }
            var groups: [[String: Any]] = []
            for _ in 0..<50 {
                let response = try await httpGet(port: controller.adminPort, path: "/prometheus/targets")
                #expect(response.status == 200)
                #expect(response.headers["content-type"] == "application/json")
                groups = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [[String: Any]])
                if groups.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(100))  // the destination index follows the store
            }
            #expect(groups.count == 2)
            let controllerGroup = try #require(groups.first)
            #expect(controllerGroup["targets"] as? [String] == ["127.0.0.1:\(controller.adminPort)"])
            #expect((controllerGroup["labels"] as? [String: String])?["component"] == "controller")
            let proxy = try #require(groups.last)
            #expect(proxy["targets"] as? [String] == ["127.0.0.61:4191"])
            let labels = try #require(proxy["labels"] as? [String: String])
            #expect(labels["component"] == "proxy")
            #expect(labels["namespace"] == "shop")
            #expect(labels["workload"] == "web-1")
            #expect(labels["service_account"] == "web")
            #expect(labels["app"] == "web")
            #expect(labels["identity"]?.hasPrefix("web.shop.serviceaccount.identity.starling.") == true)
            #expect(labels["team"] == nil)
        }
    }

    /// Gateways in processes of their own (`--gateway external`) are scraped on their probe
    /// ports; a gateway the controller hosts is not listed (its series are the controller's).
    @Test func prometheusTargetsListExternalGatewaysOnly() async throws {
        let gatewayService = Resource(
            name: MirrorLabels.gatewayServiceName, namespace: MirrorLabels.namespace,
            annotations: [MirrorLabels.gatewayAddressAnnotation: "10.0.2.7,10.0.2.8"],
            spec: ServiceSpec(ports: [ServicePort(name: "mc-gateway", port: 4143), ServicePort(name: "mc-probe", port: 4191)]))
        for hosted in [false, true] {
            try await withController(gatewayHosted: hosted) { controller in
                _ = try await controller.withClients { api in
                    try await api.apply([TestResources.namespace(MirrorLabels.namespace), gatewayService])
                }
                // A proxy registered after the Service: once it is listed, the Service is indexed too.
                let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
                try await controller.withClients(.token(token)) { api in
                    _ = try await api.mesh.register(.with {
                        $0.name = "web-1"
                        $0.address = "127.0.0.61"
                        $0.adminPort = 4191
                        $0.ports = [.with { $0.name = "http"; $0.port = 4143; $0.appPort = 8080 }]
                    })
                }
                var groups: [[String: Any]] = []
                for _ in 0..<50 {
                    let response = try await httpGet(port: controller.adminPort, path: "/prometheus/targets")
                    groups = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [[String: Any]])
                    if groups.contains(where: { ($0["labels"] as? [String: String])?["component"] == "proxy" }) { break }
                    try await Task.sleep(for: .milliseconds(100))  // the destination index follows the store
                }
                #expect(groups.count == (hosted ? 2 : 4))
                let gateways = groups.filter { ($0["labels"] as? [String: String])?["component"] == "gateway" }
                if hosted {
                    #expect(gateways.isEmpty)
                } else {
                    #expect(gateways.compactMap { ($0["targets"] as? [String])?.first } == ["10.0.2.7:4191", "10.0.2.8:4191"])
                    let labels = try #require(gateways.first?["labels"] as? [String: String])
                    #expect(labels["cluster"] == "test")
                    #expect(labels["namespace"] == MirrorLabels.namespace)
                    #expect(labels["workload"] == MirrorLabels.gatewayServiceName)
                }
            }
        }
    }

    @Test func registeringAnAdminPortBeyond65535IsRefused() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            let error = await #expect(throws: RPCError.self) {
                try await controller.withClients(.token(token)) { api in
                    _ = try await api.mesh.register(.with {
                        $0.name = "web-1"
                        $0.address = "127.0.0.63"
                        $0.adminPort = 70000
                        $0.ports = [.with { $0.name = "http"; $0.port = 4143; $0.appPort = 8080 }]
                    })
                }
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("admin port 70000") == true)
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

    /// An IPv6 API address binds as IPv6, and clients reach the API there (the certificate names
    /// the address). Skipped where the machine has no IPv6 loopback (some containers).
    @Test(.enabled(if: ipv6LoopbackAvailable(), "no IPv6 loopback (::1) on this machine"))
    func theAPIServesOnAnIPv6Address() async throws {
        try await withController(apiHost: "::1") { controller in
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

/// Whether a socket can be bound to ::1 here.
func ipv6LoopbackAvailable() -> Bool {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
    }
}
