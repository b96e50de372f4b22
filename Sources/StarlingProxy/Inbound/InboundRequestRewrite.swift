import NIOHPACK
import StarlingCore

/// Where one inbound HTTP/2 request goes and what the application sees of its headers: the
/// mesh's own headers (`starling-target`, `starling-orig-proto`) are consumed, and
/// `starling-client-id` carries the verified caller (replacing whatever the caller sent). From a
/// multicluster gateway, the caller is the one the gateway verified (`starling-forwarded-client-id`,
/// with its cluster in `starling-client-cluster`); from any other peer the forwarded headers are
/// dropped unread.
struct InboundRequestRewrite: Sendable, Hashable {
    /// How to speak to the application.
    enum AppProtocol: Sendable, Hashable {
        /// The caller's application spoke HTTP/1.x: restore HTTP/1.1 towards the application.
        case http1
        /// The caller's application spoke HTTP/2 (gRPC, h2c): forward as HTTP/2 prior knowledge.
        case http2
    }

    /// The application port the request goes to.
    var appPort: Int
    var appProtocol: AppProtocol
    /// The service authority the caller named (`starling-target`), else the request's
    /// `:authority`; for metrics and logs.
    var authority: String
    /// The request headers to send to the application.
    var headers: HPACKHeaders
    /// The caller as inbound policy judges it: the verified peer, or the caller a gateway peer
    /// names (with the cluster it names).
    var caller: PolicyCaller
    /// The request is gRPC (a refusal is answered with a gRPC status).
    var isGRPC: Bool

    /// - Parameter clientName: `client.dnsName` when the caller has it at hand (computed otherwise).
    init(
        _ incoming: HPACKHeaders, client: MeshIdentity, clientName: String? = nil,
        clientAddress: [UInt8]? = nil, configuration: InboundProxy.Configuration
    ) {
        let target = incoming.first(name: MeshHeaders.target)
        let originalProtocol = incoming.first(name: MeshHeaders.originalProtocol)
        self.appPort = configuration.appPort(forTarget: target)
        // HTTP/2 end to end only for gRPC, which needs it (trailers); other HTTP/2 requests reach
        // the application as HTTP/1.1, which every HTTP server speaks.
        let isGRPC = GRPCStatus.isCall(incoming)
        self.isGRPC = isGRPC
        self.appProtocol = Self.isHTTP1(originalProtocol) || !isGRPC ? .http1 : .http2
        self.authority = target ?? incoming.first(name: ":authority") ?? ""

        var headers = incoming
        headers.remove(name: MeshHeaders.target)
        headers.remove(name: MeshHeaders.originalProtocol)
        headers.remove(name: MeshHeaders.clientIdentity)
        let callerName = Self.callerIdentity(incoming, peer: client, peerName: clientName)
        headers.add(name: MeshHeaders.clientIdentity, value: callerName)
        if client.isGateway, incoming.first(name: GatewayHeaders.forwardedClientIdentity) != nil {
            // Through a gateway: the application sees the original caller's cluster too.
            let cluster = incoming.first(name: GatewayHeaders.forwardedClientCluster) ?? GatewayHeaders.unknownCluster
            headers.remove(name: GatewayHeaders.clientCluster)
            headers.add(name: GatewayHeaders.clientCluster, value: cluster)
            self.caller = PolicyCaller(identity: callerName, cluster: cluster, address: clientAddress, viaGateway: true)
        } else {
            // A direct peer is from this cluster, whatever it says (the evaluator fills it in).
            self.caller = PolicyCaller(identity: callerName, cluster: configuration.clusterName, address: clientAddress)
        }
        // Only a gateway may vouch for another caller, and only to this proxy: never pass them on.
        // (Checked without lower-casing every name: this runs on every request.)
        if headers.contains(where: { $0.name.hasASCIICaseInsensitivePrefix(GatewayHeaders.forwardedPrefix) }) {
            for name in headers.map(\.name) where name.hasASCIICaseInsensitivePrefix(GatewayHeaders.forwardedPrefix) {
                headers.remove(name: name)
            }
        }
        headers.remove(name: GatewayHeaders.hops)
        self.headers = headers
    }

    /// The identity the application is told called it: the verified peer, or — when the peer is a
    /// multicluster gateway that names the caller it verified — that caller.
    static func callerIdentity(_ incoming: HPACKHeaders, peer: MeshIdentity, peerName: String? = nil) -> String {
        guard peer.isGateway, let forwarded = incoming.first(name: GatewayHeaders.forwardedClientIdentity),
            let caller = MeshIdentity(dnsName: forwarded)
        else { return peerName ?? peer.dnsName }
        return caller.dnsName
    }

    /// True for `HTTP/1.0` and `HTTP/1.1` (any case); anything else is treated as HTTP/2.
    static func isHTTP1(_ value: String?) -> Bool {
        guard let value else { return false }
        return value.hasASCIICaseInsensitivePrefix("HTTP/1")
    }
}
