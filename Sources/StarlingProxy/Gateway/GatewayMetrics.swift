import Metrics

/// The gateway's metrics (swift-metrics API only; the starting command picks the backend).
enum GatewayMetrics {
    static let requestsTotal = "starling_gateway_requests_total"
    static let refusedTotal = "starling_gateway_refused_total"
    static let connectionsTotal = "starling_gateway_connections_total"

    /// One HTTP response sent back through the gateway (the workload's or the gateway's own).
    static func request(target: String, status: Int, client: String) {
        Counter(
            label: requestsTotal,
            dimensions: [("target", target), ("status_code", String(status)), ("client_identity", client)]
        ).increment()
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
