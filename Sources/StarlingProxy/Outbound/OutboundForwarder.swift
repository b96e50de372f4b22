import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOPosix
import StarlingCore

/// What the outbound's HTTP/1 and HTTP/2 front ends share about a request: the headers its
/// upstream gets, and how its outcome is logged, counted and shown to taps. Where it goes is its
/// ``UpstreamExchange``'s (routed with the listener's ``UpstreamConnector``).
struct OutboundForwarder: Sendable {
    let logger: Logger
    /// This cluster's name, sent to remote gateways as `starling-client-cluster` when configured.
    var clusterName: String? = nil
    /// Where finished requests are shown to open taps, and this workload's identity for them.
    var tap: TapHub = TapHub()
    var localIdentity: String = ""

    /// The request headers as the upstream gets them. Meshed: the client's own mesh headers are
    /// replaced by `starling-target` (and `starling-orig-proto` for HTTP/1 clients). Plain
    /// endpoints get no mesh headers at all.
    func meshHeaders(for request: OutboundRequest, pick: Pick) -> HPACKHeaders {
        var headers = request.headers
        headers.remove(name: MeshHeaders.target)
        headers.remove(name: MeshHeaders.originalProtocol)
        guard pick.endpoint.identity != nil else { return headers }
        headers.add(name: MeshHeaders.target, value: pick.endpoint.authorityOverride ?? pick.backend)
        headers.remove(name: GatewayHeaders.clientCluster)
        // Only a remote gateway (a mirror's endpoint) is told this cluster's name: an in-cluster
        // peer needs no such header, and each one costs HPACK work on both proxies.
        if let clusterName, pick.endpoint.authorityOverride != nil {
            headers.add(name: GatewayHeaders.clientCluster, value: clusterName)
        }
        if let original = request.originalProtocol {
            headers.add(name: MeshHeaders.originalProtocol, value: original)
        }
        return headers
    }

    /// A request the proxy answers with `error` itself: logged once (refusals of bad or unknown
    /// requests at debug level, failures as warnings) and counted.
    func failed(_ request: OutboundRequest, error: ProxyError, pick: Pick?, logger: Logger) {
        let metadata: Logger.Metadata = [
            "authority": "\(request.authority)", "error": "\(error)",
            "endpoint": "\(pick.map { "\($0.endpoint)" } ?? "-")",
        ]
        switch error.code {
        case .unknownService, .badRequest, .headersTooLarge:
            logger.debug("request refused", metadata: metadata)
            // The name came from the client and means nothing to the mesh: as a label it would
            // let a client grow the series without bound, so it is counted as `unknown`.
            record(request, pick: pick, status: error.httpStatus, latency: nil, nameUnknown: true)
        default:
            logger.warning("request failed", metadata: metadata)
            record(request, pick: pick, status: error.httpStatus, latency: nil)
        }
    }

    func record(
        _ request: OutboundRequest, pick: Pick?, status: Int, latency: Duration?, grpcStatus: Int? = nil, nameUnknown: Bool = false
    ) {
        OutboundMetrics.record(
            OutboundMetrics.Request(
                authority: nameUnknown ? OutboundMetrics.unknown : request.authority,
                targetService: pick?.backend ?? (nameUnknown ? OutboundMetrics.unknown : request.routingAuthority),
                backend: pick?.backend, service: pick?.service, split: pick?.split ?? false,
                route: RequestMetricsSwitch.isEnabled ? pick.flatMap { Self.route(of: request, in: $0.routes) } : nil,
                statusCode: status, grpcStatus: grpcStatus,
                tls: pick?.endpoint.identity != nil, peerIdentity: pick?.endpoint.identity),
            latency: latency)
        tap.publish {
            TapEvent(
                direction: "outbound", method: request.method, authority: request.authority,
                path: request.headers.first(name: ":path") ?? "", status: status, latency: latency,
                sourceIdentity: localIdentity, destinationIdentity: pick?.endpoint.identity?.dnsName ?? "",
                sourceCluster: clusterName, destinationCluster: pick?.endpoint.labels["cluster"] ?? clusterName,
                destinationWorkload: pick?.endpoint.labels["workload"], tls: pick?.endpoint.identity != nil)
        }
    }

    /// The HTTPRoute `request` belongs to; nil when its service has none or none matches.
    static func route(of request: OutboundRequest, in routes: RouteTable) -> String? {
        guard !routes.isEmpty else { return nil }
        return routes.route(
            method: request.method, path: request.headers.first(name: ":path") ?? "/", header: { request.headers.first(name: $0) })
    }
}
