import StarlingCore
@testable import StarlingMulticluster
import Testing

/// A replicated cluster has one gateway per replica: liveness is per gateway, and the cluster is
/// reachable while any of them answers.
struct MulticlusterRegistryTests {
    @Test func eachGatewayOfAClusterIsAliveOrDeadOnItsOwn() {
        let registry = MulticlusterRegistry()
        #expect(registry.isAlive("east", gateway: "10.0.0.1:4143"), "an unknown gateway counts as alive")
        registry.register(cluster: "east", gateways: ["10.0.0.1:4143", "10.0.0.2:4143"])
        #expect(!registry.isAlive("east", gateway: "10.0.0.1:4143"), "no probe has answered yet")
        registry.recordProbe("east", gateway: "10.0.0.1:4143", success: true, latency: .milliseconds(2), error: nil)
        registry.recordProbe("east", gateway: "10.0.0.2:4143", success: true, latency: .milliseconds(3), error: nil)
        for _ in 0..<3 {
            registry.recordProbe("east", gateway: "10.0.0.1:4143", success: false, latency: nil, error: "refused")
        }
        #expect(!registry.isAlive("east", gateway: "10.0.0.1:4143"))
        #expect(registry.isAlive("east", gateway: "10.0.0.2:4143"))
        #expect(registry.statuses().map(\.gatewayAddress) == ["10.0.0.1:4143", "10.0.0.2:4143"])
        for _ in 0..<3 {
            registry.recordProbe("east", gateway: "10.0.0.2:4143", success: false, latency: nil, error: "refused")
        }
        #expect(!registry.isAlive("east", gateway: "10.0.0.2:4143"))
    }

    @Test func registeringAgainKeepsKnownGatewaysAndDropsRemovedOnes() {
        let registry = MulticlusterRegistry()
        registry.register(cluster: "east", gateways: ["10.0.0.1:4143", "10.0.0.2:4143"])
        registry.recordProbe("east", gateway: "10.0.0.1:4143", success: true, latency: .milliseconds(2), error: nil)
        registry.update("east") { $0.mirrorState = "running" }
        registry.register(cluster: "east", gateways: ["10.0.0.1:4143", "10.0.0.3:4143"])
        let statuses = registry.statuses()
        #expect(statuses.map(\.gatewayAddress) == ["10.0.0.1:4143", "10.0.0.3:4143"])
        #expect(statuses[0].health.alive, "a gateway still listed keeps its probe history")
        #expect(statuses[0].mirrorState == "running")
    }
}
