import Metrics
import NIOCore
import StarlingCore

/// The outbound proxy's metrics (swift-metrics; the starting command bootstraps Prometheus).
/// Every name and dimension the outbound side emits is here.
package enum OutboundMetrics {
    static let requestsTotal = "starling_proxy_requests_total"
    static let responseLatency = "starling_proxy_response_latency_seconds"
    static let tcpOpenTotal = "starling_proxy_tcp_open_total"
    static let tcpCloseTotal = "starling_proxy_tcp_close_total"
    static let tcpBytesTotal = "starling_proxy_tcp_bytes_total"

    static let direction = ("direction", "outbound")
    /// `authority` and `target_service` of a request refused for a name the mesh does not know.
    package static let unknown = "unknown"

    /// One request's outcome, counted when its response head went out (or its error response).
    ///
    /// Besides the raw `authority` and `target_service`, every series names the service in the
    /// one form `viz stat` queries: `service` is what the caller asked for (a split's apex) and
    /// `dst_service` where it went (the split's backend, else the service itself), both fully
    /// qualified without a port. They are derived when a counter is made, not per request.
    struct Request: Hashable, Sendable {
        var authority: String
        var targetService: String
        var backend: String?
        /// The picked service (discovery's fully qualified name); nil when nothing was picked.
        var service: String?
        var split: Bool
        /// The HTTPRoute the request matched (`route`), when its service has routes.
        var route: String? = nil
        var statusCode: Int
        /// A gRPC call's status (``GRPCStatus``); nil for other requests.
        var grpcStatus: Int? = nil
        var tls: Bool
        /// Spelled out (`dnsName`) only when the counter is made.
        var peerIdentity: MeshIdentity?
    }

    private struct LatencyKey: Hashable, Sendable {
        var targetService: String
        var service: String?
        var split: Bool
        var route: String?
        var statusCode: Int
    }

    /// `service` and `dst_service` of a request (see ``Request``).
    static func serviceDimensions(service: String?, split: Bool, targetService: String) -> [(String, String)] {
        let apex = withoutPort(service ?? targetService)
        return [("service", apex), ("dst_service", split ? withoutPort(targetService) : apex)]
    }

    /// The host of `host:port`; anything else as it is.
    static func withoutPort(_ authority: String) -> String {
        NetworkAddress.splitHostPort(authority)?.host ?? authority
    }

    private static let requestCounters = MetricHandleCache<Request, Counter>()
    private static let latencyTimers = MetricHandleCache<LatencyKey, Metrics.Timer>()

    static func record(_ request: Request, latency: Duration?) {
        guard RequestMetricsSwitch.isEnabled else { return }
        requestCounters.handle(request) {
            var dimensions = [
                direction,
                ("authority", request.authority),
                ("target_service", request.targetService),
                ("status_code", String(request.statusCode)),
                ("tls", request.tls ? "true" : "false"),
                ("peer_identity", request.peerIdentity?.dnsName ?? ""),
            ]
            if let backend = request.backend { dimensions.append(("backend", backend)) }
            if let route = request.route { dimensions.append(("route", route)) }
            if let grpcStatus = request.grpcStatus { dimensions.append(("grpc_status", String(grpcStatus))) }
            dimensions += serviceDimensions(service: request.service, split: request.split, targetService: request.targetService)
            return Counter(label: requestsTotal, dimensions: dimensions)
        }.increment()
        if let latency {
            let key = LatencyKey(
                targetService: request.targetService, service: request.service, split: request.split, route: request.route,
                statusCode: request.statusCode)
            latencyTimers.handle(key) {
                Metrics.Timer(
                    label: responseLatency,
                    dimensions: [direction, ("target_service", key.targetService), ("status_code", String(key.statusCode))]
                        + (key.route.map { [("route", $0)] } ?? [])
                        + serviceDimensions(service: key.service, split: key.split, targetService: key.targetService))
            }.record(duration: latency)
        }
    }

    static func connectionOpened() {
        Counter(label: tcpOpenTotal, dimensions: [direction]).increment()
    }

    static func connectionClosed(kind: String, bytesRead: Int, bytesWritten: Int) {
        // The protocol is known only after detection, so it labels closes, not opens.
        Counter(label: tcpCloseTotal, dimensions: [direction, ("protocol", kind)]).increment()
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "read")]).increment(by: bytesRead)
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "write")]).increment(by: bytesWritten)
    }
}
