public import Foundation
import Synchronization

/// What the controller knows about each linked cluster right now: gateway liveness and probe
/// latencies, the mirror loop's state. Read by `multicluster gateways`, `check --multicluster`
/// and the destination index (a dead gateway's mirrors get no endpoints, so a TrafficSplit
/// shifts their share to the local backends).
public final class MulticlusterRegistry: Sendable {
    public struct LinkStatus: Sendable {
        public var cluster: String
        public var gatewayAddress: String
        public var health = GatewayHealth()
        public var latencies = LatencyWindow()
        public var lastProbeError: String?
        public var mirrorState = "connecting"
        public var mirroredServices = 0
        public var lastSync: Date?
        public var credentialExpiresAt: Date?
    }

    private let links = Mutex<[String: LinkStatus]>([:])
    private let subscribers = Mutex<[UUID: AsyncStream<Void>.Continuation]>([:])

    public init() {}

    public func statuses() -> [LinkStatus] { links.withLock { Array($0.values).sorted { $0.cluster < $1.cluster } } }

    /// Gateway liveness of a linked cluster; unknown clusters count as alive (mirrors without a
    /// running link keep their endpoints until the link says otherwise).
    public func isAlive(_ cluster: String) -> Bool { links.withLock { $0[cluster]?.health.alive ?? true } }

    /// Starts tracking `cluster`; a cluster already tracked at the same gateway address keeps its
    /// status (the prober and the mirror of one link both register it).
    func register(cluster: String, gatewayAddress: String) {
        links.withLock {
            if $0[cluster]?.gatewayAddress == gatewayAddress { return }
            $0[cluster] = LinkStatus(cluster: cluster, gatewayAddress: gatewayAddress)
        }
    }

    func remove(cluster: String) {
        let existed = links.withLock { $0.removeValue(forKey: cluster) != nil }
        if existed { notify() }
    }

    func update(_ cluster: String, _ change: (inout LinkStatus) -> Void) {
        links.withLock { if var s = $0[cluster] { change(&s); $0[cluster] = s } }
    }

    func recordProbe(_ cluster: String, success: Bool, latency: Duration?, error: String?) {
        let now = ContinuousClock.now
        let changed = links.withLock { all -> Bool in
            guard var s = all[cluster] else { return false }
            let changed = s.health.record(success: success)
            if let latency, success { s.latencies.record(latency, at: now) }
            s.lastProbeError = error
            all[cluster] = s
            return changed
        }
        if changed { notify() }
    }

    /// Wakes on every gateway liveness change.
    public func changes() -> AsyncStream<Void> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        continuation.onTermination = { [weak self] _ in self?.subscribers.withLock { _ = $0.removeValue(forKey: id) } }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    private func notify() {
        for c in subscribers.withLock({ Array($0.values) }) { c.yield() }
    }
}
