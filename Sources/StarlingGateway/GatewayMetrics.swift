import Metrics
import StarlingCore
import StarlingProxy

/// The gateway's metrics (swift-metrics API only; the starting command picks the backend).
/// Requests are counted per target service, status and calling cluster, so the calls made
/// across clusters can be told apart by who made them, not just summed as bytes.
enum GatewayMetrics {
    static let requestsTotal = "starling_gateway_requests_total"
    static let responseLatency = "starling_gateway_response_latency_seconds"
    static let refusedTotal = "starling_gateway_refused_total"
    static let connectionsTotal = "starling_gateway_connections_total"
    static let tcpOpenTotal = "starling_gateway_tcp_open_total"
    static let tcpCloseTotal = "starling_gateway_tcp_close_total"
    static let tcpBytesTotal = "starling_gateway_tcp_bytes_total"

    private struct RequestKey: Hashable, Sendable {
        var target: String
        var status: Int
        var grpcStatus: Int?
        var identity: MeshIdentity
        var cluster: String
    }

    private struct LatencyKey: Hashable, Sendable {
        var target: String
        var status: Int
        var cluster: String
    }

    // Handles are kept, as the outbound's are: making one per request asks the backend's
    // factory (label sanitizing, registry lock) on every request through the gateway.
    private static let requestCounters = MetricHandleCache<RequestKey, Counter>()
    private static let latencyTimers = MetricHandleCache<LatencyKey, Metrics.Timer>()

    /// One HTTP response sent back through the gateway (the workload's or the gateway's own);
    /// `latency` when the workload answered.
    /// `grpcStatus`: a gRPC call's status (``GRPCStatus``), nil for other requests.
    static func request(target: String, status: Int, grpcStatus: Int? = nil, caller: GatewayCaller, latency: Duration? = nil) {
        let key = RequestKey(target: target, status: status, grpcStatus: grpcStatus, identity: caller.identity, cluster: caller.cluster)
        requestCounters.handle(key) {
            Counter(
                label: requestsTotal,
                dimensions: [
                    ("target", key.target), ("status_code", String(key.status)), ("client_identity", key.identity.dnsName),
                    ("client_cluster", key.cluster),
                ] + (key.grpcStatus.map { [("grpc_status", String($0))] } ?? []))
        }.increment()
        if let latency {
            let key = LatencyKey(target: target, status: status, cluster: caller.cluster)
            latencyTimers.handle(key) {
                Metrics.Timer(
                    label: responseLatency,
                    dimensions: [("target", key.target), ("status_code", String(key.status)), ("client_cluster", key.cluster)])
            }.record(duration: latency)
        }
    }

    /// A refused connection (handshake) or request/opaque connection (admission).
    static func refused(reason: String) {
        Counter(label: refusedTotal, dimensions: [("reason", reason)]).increment()
    }

    /// An accepted connection, by protocol (`h2`, `opaque`), once its handshake succeeded.
    static func connection(protocol name: String) {
        Counter(label: connectionsTotal, dimensions: [("protocol", name)]).increment()
    }

    /// A TCP connection accepted, before its handshake (refused ones too).
    static func connectionOpened() {
        Counter(label: tcpOpenTotal).increment()
    }

    /// A TCP connection closed, by the protocol it spoke (`h2`, `opaque`; `unknown` when its
    /// handshake never completed), with the bytes it carried on the wire (TLS included):
    /// `read` from the linked cluster's caller, `write` back to it.
    static func connectionClosed(protocol name: String, bytesRead: Int, bytesWritten: Int) {
        Counter(label: tcpCloseTotal, dimensions: [("protocol", name)]).increment()
        Counter(label: tcpBytesTotal, dimensions: [("io", "read")]).increment(by: bytesRead)
        Counter(label: tcpBytesTotal, dimensions: [("io", "write")]).increment(by: bytesWritten)
    }
}

/// Who called through the gateway: the verified identity, and the cluster its proxy named
/// (`starling-client-cluster`). The cluster is a claim, so as a metric label it is kept only
/// when it has a cluster name's form (a DNS label); anything else counts as `unknown`.
struct GatewayCaller: Sendable {
    var identity: MeshIdentity
    var cluster: String
    /// The request's method and path, read only while a tap is open (what the tap shows).
    var tapped: (method: String, path: String)?

    init(identity: MeshIdentity, claimedCluster: String?) {
        self.identity = identity
        if let claimedCluster, ResourceNames.dns1123LabelProblem(claimedCluster) == nil {
            cluster = claimedCluster
        } else {
            cluster = GatewayHeaders.unknownCluster
        }
    }
}

extension ConnectionMetricsHandler.Sink {
    static let gateway = ConnectionMetricsHandler.Sink(
        opened: { GatewayMetrics.connectionOpened() },
        closed: { GatewayMetrics.connectionClosed(protocol: $0, bytesRead: $1, bytesWritten: $2) })
}
