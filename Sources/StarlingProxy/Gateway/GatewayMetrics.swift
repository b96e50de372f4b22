import Metrics
import StarlingCore

/// The gateway's metrics (swift-metrics API only; the starting command picks the backend).
/// Requests are counted per target service, status and calling cluster, so the calls made
/// across clusters can be told apart by who made them, not just summed as bytes.
enum GatewayMetrics {
    static let requestsTotal = "starling_gateway_requests_total"
    static let responseLatency = "starling_gateway_response_latency_seconds"
    static let refusedTotal = "starling_gateway_refused_total"
    static let connectionsTotal = "starling_gateway_connections_total"

    /// One HTTP response sent back through the gateway (the workload's or the gateway's own);
    /// `latency` when the workload answered.
    static func request(target: String, status: Int, caller: GatewayCaller, latency: Duration? = nil) {
        Counter(
            label: requestsTotal,
            dimensions: [
                ("target", target), ("status_code", String(status)), ("client_identity", caller.identity.dnsName),
                ("client_cluster", caller.cluster),
            ]
        ).increment()
        if let latency {
            Metrics.Timer(
                label: responseLatency,
                dimensions: [("target", target), ("status_code", String(status)), ("client_cluster", caller.cluster)]
            ).record(duration: latency)
        }
    }

    /// A refused connection (handshake) or request/opaque connection (admission).
    static func refused(reason: String) {
        Counter(label: refusedTotal, dimensions: [("reason", reason)]).increment()
    }

    /// An accepted connection, by protocol (`h2`, `opaque`).
    static func connection(protocol name: String) {
        Counter(label: connectionsTotal, dimensions: [("protocol", name)]).increment()
    }
}

/// Who called through the gateway: the verified identity, and the cluster its proxy named
/// (`starling-client-cluster`). The cluster is a claim, so as a metric label it is kept only
/// when it has a cluster name's form (a DNS label); anything else counts as `unknown`.
struct GatewayCaller: Sendable {
    var identity: MeshIdentity
    var cluster: String

    init(identity: MeshIdentity, claimedCluster: String?) {
        self.identity = identity
        if let claimedCluster, ResourceNames.dns1123LabelProblem(claimedCluster) == nil {
            cluster = claimedCluster
        } else {
            cluster = GatewayHeaders.unknownCluster
        }
    }
}
