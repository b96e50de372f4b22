import StarlingCore
import StarlingMulticluster
import Testing

struct MirrorReconcilerTests {
    let reconciler = MirrorReconciler(
        cluster: "workload2", gatewayAddresses: ["127.2.0.1"], gatewayPort: 4143,
        gatewayIdentity: "starling-gateway.starling-multicluster.serviceaccount.identity.starling.cluster.local",
        selector: LabelSelector(matchLabels: ["mirror.starling.io/exported": "true"]))

    func remoteService(_ name: String, namespace: String = "test", exported: Bool = true, version: Int64 = 1, port: Int64 = 9898) -> Resource {
        var labels = ["app": name]
        if exported { labels["mirror.starling.io/exported"] = "true" }
        return Resource(
            apiVersion: "v1", kind: "Service",
            metadata: ObjectMeta(name: name, namespace: namespace, labels: labels, resourceVersion: version),
            body: JSONObject([("spec", .object(JSONObject([("ports", .array([.object(JSONObject([("port", .int(port))]))]))])))]))
    }

    @Test func anExportedServiceGetsAMirrorNamedAfterItsCluster() throws {
        let plan = reconciler.plan(remote: [remoteService("podinfo")], local: [])
        let mirror = try #require(plan.apply.first)
        #expect(plan.apply.count == 1 && plan.delete.isEmpty)
        #expect(mirror.metadata.name == "podinfo-workload2")
        #expect(mirror.metadata.namespace == "test")
        #expect(mirror.metadata.labels["mirror.starling.io/mirrored-service"] == "true")
        #expect(mirror.metadata.labels["mirror.starling.io/cluster-name"] == "workload2")
        #expect(mirror.metadata.labels["mirror.starling.io/exported"] == nil)
        #expect(mirror.metadata.annotations["mirror.starling.io/remote-svc-fq-name"] == "podinfo.test.svc.cluster.local")
        #expect(mirror.metadata.annotations["mirror.starling.io/gateway-address"] == "127.2.0.1")
        #expect(try ServiceSpec(mirror).ports.map(\.port) == [9898])
    }

    @Test func aServiceThatIsNotExportedIsNotMirrored() {
        #expect(reconciler.plan(remote: [remoteService("db", exported: false)], local: []).isEmpty)
    }

    @Test func aResyncIsIdempotentAndRemovesLeftoversOnly() {
        let mirror = reconciler.mirror(of: remoteService("podinfo"))
        let stale = reconciler.mirror(of: remoteService("gone"))
        let otherCluster = MirrorReconciler(
            cluster: "east", gatewayAddresses: ["x"], gatewayPort: 1, gatewayIdentity: "y",
            selector: LabelSelector(matchLabels: [:])
        ).mirror(of: remoteService("podinfo"))
        let plan = reconciler.plan(remote: [remoteService("podinfo")], local: [mirror, stale, otherCluster])
        #expect(plan.apply.isEmpty)
        #expect(plan.delete == [stale.key])
    }

    @Test func aChangedPortUpdatesTheMirror() {
        let old = reconciler.mirror(of: remoteService("podinfo", port: 9898))
        let plan = reconciler.plan(remote: [remoteService("podinfo", version: 2, port: 8080)], local: [old])
        #expect(plan.apply.count == 1)
    }

    @Test func unexportingOrDeletingRemovesTheMirror() {
        let mirror = reconciler.mirror(of: remoteService("podinfo"))
        let unexported = reconciler.plan(event: .modified, remote: remoteService("podinfo", exported: false), local: mirror)
        #expect(unexported.delete == [mirror.key])
        let deleted = reconciler.plan(event: .deleted, remote: remoteService("podinfo"), local: mirror)
        #expect(deleted.delete == [mirror.key])
        #expect(reconciler.plan(event: .deleted, remote: remoteService("podinfo"), local: nil).isEmpty)
    }

    @Test func aLocalServiceWithTheMirrorsNameIsNeverTouched() {
        let local = Resource(apiVersion: "v1", kind: "Service", metadata: ObjectMeta(name: "podinfo-workload2", namespace: "test"))
        let plan = reconciler.plan(event: .deleted, remote: remoteService("podinfo"), local: local)
        #expect(plan.isEmpty)
    }
}

struct GatewayHealthTests {
    @Test func aNewGatewayIsNotAliveUntilAProbeSucceeds() {
        var health = GatewayHealth(failureThreshold: 3)
        #expect(!health.alive)
        let failed = health.record(success: false)
        #expect(!failed && !health.alive)
        let answered = health.record(success: true)
        #expect(answered && health.alive)
    }

    @Test func aGatewayDiesAfterTheFailureThresholdAndComesBackOnOneSuccess() {
        var health = GatewayHealth(failureThreshold: 3)
        let firstAnswer = health.record(success: true)
        #expect(firstAnswer && health.alive)
        let first = health.record(success: false)
        let second = health.record(success: false)
        let third = health.record(success: false)
        #expect(!first && !second && third)
        #expect(!health.alive)
        let recovered = health.record(success: true)
        #expect(recovered && health.alive)
    }
}

struct LatencyWindowTests {
    @Test func percentilesCoverOnlyTheLastMinute() {
        var window = LatencyWindow(span: .seconds(60))
        let start = ContinuousClock.now
        window.record(.milliseconds(500), at: start)
        for i in 1...100 { window.record(.milliseconds(i), at: start.advanced(by: .seconds(61))) }
        let now = start.advanced(by: .seconds(61))
        #expect(window.percentileMilliseconds(50, now: now) == 50)
        #expect(window.percentileMilliseconds(99, now: now) == 99)
        #expect(LatencyWindow().percentileMilliseconds(50, now: now) == nil)
    }
}
