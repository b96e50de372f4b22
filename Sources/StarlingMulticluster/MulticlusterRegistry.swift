public import Foundation
import Synchronization

/// What the controller knows about each linked cluster right now: gateway liveness and probe
/// latencies, the mirror loop's state. Read by `multicluster gateways`, `check --multicluster`
/// and the destination index (a dead gateway's mirrors get no endpoints, so a TrafficSplit
/// shifts their share to the local backends).
public final class MulticlusterRegistry: Sendable {
    /// One gateway of one linked cluster (a replicated cluster has one per replica).
    public struct LinkStatus: Sendable {
        public var cluster: String
        /// `host:port`
        public var gatewayAddress: String
        public var health = GatewayHealth()
        public var latencies = LatencyWindow()
        public var lastProbeError: String?
        public var mirrorState = "connecting"
        public var mirroredServices = 0
        public var lastSync: Date?
        public var credentialExpiresAt: Date?
        /// When the controller renews the link credential (two thirds of its lifetime).
        public var credentialRenewsAt: Date?
        /// Why the last renewal of the link credential failed; nil once one succeeds.
        public var credentialRenewalError: String?
    }

    /// cluster → gateway address → status.
    private let links = Mutex<[String: [String: LinkStatus]]>([:])
    private let subscribers = Mutex<[UUID: AsyncStream<Void>.Continuation]>([:])

    public init() {}

    /// Every gateway of every linked cluster, by cluster then address.
    public func statuses() -> [LinkStatus] {
        links.withLock { all in
            all.values.flatMap(\.values).sorted { ($0.cluster, $0.gatewayAddress) < ($1.cluster, $1.gatewayAddress) }
        }
    }

    /// Whether one gateway (`host:port`) of a linked cluster is alive; unknown ones count as alive.
    public func isAlive(_ cluster: String, gateway: String) -> Bool {
        links.withLock { $0[cluster]?[gateway]?.health.alive ?? true }
    }

    /// Tracks exactly these gateways (`host:port`) of `cluster`: those already tracked keep their
    /// status (the prober and the mirror of one link both register them), others are dropped.
    func register(cluster: String, gateways: [String]) {
        let changed = links.withLock { all -> Bool in
            let before = all[cluster] ?? [:]
            var after: [String: LinkStatus] = [:]
            for address in gateways {
                after[address] = before[address] ?? LinkStatus(cluster: cluster, gatewayAddress: address)
            }
            all[cluster] = after
            return Set(before.keys) != Set(after.keys)
        }
        if changed { notify() }
    }

    func remove(cluster: String) {
        let existed = links.withLock { $0.removeValue(forKey: cluster) != nil }
        if existed { notify() }
    }

    /// Changes the status of every gateway of `cluster` (the mirror's state is the link's).
    func update(_ cluster: String, _ change: (inout LinkStatus) -> Void) {
        links.withLock { all in
            guard var gateways = all[cluster] else { return }
            for key in gateways.keys { change(&gateways[key]!) }
            all[cluster] = gateways
        }
    }

    func recordProbe(_ cluster: String, gateway: String, success: Bool, latency: Duration?, error: String?) {
        let now = ContinuousClock.now
        let changed = links.withLock { all -> Bool in
            guard var s = all[cluster]?[gateway] else { return false }
            let changed = s.health.record(success: success)
            if let latency, success { s.latencies.record(latency, at: now) }
            s.lastProbeError = error
            all[cluster]![gateway] = s
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
