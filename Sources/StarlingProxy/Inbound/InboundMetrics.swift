import Metrics
import NIOCore
import StarlingCore

/// The inbound side's metrics (swift-metrics API only; the command that starts the proxy picks
/// the backend). Names and dimensions are stable: dashboards and `starling viz stat` read them.
enum InboundMetrics {
    static let requestsTotal = "starling_proxy_requests_total"
    static let responseLatency = "starling_proxy_response_latency_seconds"
    static let tcpOpenTotal = "starling_proxy_tcp_open_total"
    static let tcpCloseTotal = "starling_proxy_tcp_close_total"
    static let tcpBytesTotal = "starling_proxy_tcp_bytes_total"
    static let handshakeFailuresTotal = "starling_proxy_tls_handshake_failures_total"

    private static let direction = ("direction", "inbound")

    private struct ResponseKey: Hashable, Sendable {
        var authority: String
        var status: Int
        var grpcStatus: Int?
        var client: MeshIdentity
    }

    private struct LatencyKey: Hashable, Sendable {
        var authority: String
        var client: MeshIdentity
    }

    private static let responseCounters = MetricHandleCache<ResponseKey, Counter>()
    /// Labelled like the counter (without the status), so that `viz stat workload --from/--to`
    /// has latencies for the requests it selects.
    private static let latencyTimers = MetricHandleCache<LatencyKey, Metrics.Timer>()

    /// One HTTP response (or proxy-generated error response) sent back to a caller;
    /// `grpcStatus`: a gRPC call's status (``GRPCStatus``), nil for other requests.
    static func recordResponse(authority: String, status: Int, grpcStatus: Int? = nil, client: MeshIdentity, latency: Duration) {
        guard RequestMetricsSwitch.isEnabled else { return }
        responseCounters.handle(ResponseKey(authority: authority, status: status, grpcStatus: grpcStatus, client: client)) {
            Counter(
                label: requestsTotal,
                dimensions: [
                    direction, ("authority", authority), ("status_code", String(status)), ("tls", "true"),
                    ("client_identity", client.dnsName),
                ] + (grpcStatus.map { [("grpc_status", String($0))] } ?? []))
        }.increment()
        latencyTimers.handle(LatencyKey(authority: authority, client: client)) {
            Metrics.Timer(
                label: responseLatency,
                dimensions: [direction, ("authority", authority), ("tls", "true"), ("client_identity", client.dnsName)])
        }.recordNanoseconds(TimeAmount(latency).nanoseconds)
    }

    static func connectionOpened() {
        Counter(label: tcpOpenTotal, dimensions: [direction]).increment()
    }

    /// A connection closed, by the protocol it spoke (`h2`, `opaque`; `unknown` when its handshake
    /// never completed), with its bytes on the wire (TLS records included): `read` from the
    /// calling proxy, `write` back to it.
    static func connectionClosed(kind: String, bytesRead: Int, bytesWritten: Int) {
        Counter(label: tcpCloseTotal, dimensions: [direction, ("protocol", kind)]).increment()
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "read")]).increment(by: bytesRead)
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "write")]).increment(by: bytesWritten)
    }

    static func handshakeFailed(_ reason: InboundHandshakeFailure.Reason) {
        Counter(label: handshakeFailuresTotal, dimensions: [direction, ("reason", reason.rawValue)]).increment()
    }
}
