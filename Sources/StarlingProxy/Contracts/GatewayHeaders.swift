public import StarlingCore

/// Header names of the multicluster path: what the calling proxy adds, what the gateway adds
/// when it forwards, and what the serving inbound proxy reads (only from a gateway peer).
public enum GatewayHeaders {
    /// Set by a calling outbound proxy that knows its cluster's name: the caller's cluster.
    /// The serving inbound proxy also sets it for the application (from the gateway's
    /// ``forwardedClientCluster``).
    public static let clientCluster = "starling-client-cluster"
    /// Set by a gateway on every request it forwards; a request that already carries it is a loop.
    public static let hops = "starling-gateway-hops"
    /// Set by a gateway: the verified identity of the proxy that called the gateway.
    public static let forwardedClientIdentity = "starling-forwarded-client-id"
    /// Set by a gateway: the caller's cluster as the caller named it (`unknown` if it did not).
    public static let forwardedClientCluster = "starling-forwarded-client-cluster"

    /// The prefix of the headers only a gateway may set; stripped from every other peer.
    package static let forwardedPrefix = "starling-forwarded-client-"

    /// The cluster value used when the caller named none.
    public static let unknownCluster = "unknown"
}

extension MeshIdentity {
    /// The service account multicluster gateways run as.
    public static let gatewayServiceAccount = "starling-gateway"
    /// The namespace multicluster gateways run in.
    public static let gatewayNamespace = "starling-multicluster"

    /// The gateway identity of `trustDomain`.
    public static func gateway(trustDomain: String = "cluster.local") -> MeshIdentity {
        MeshIdentity(namespace: gatewayNamespace, serviceAccount: gatewayServiceAccount, trustDomain: trustDomain)
    }

    /// True for a multicluster gateway's identity (any trust domain; the TLS layer already
    /// restricted peers to ours).
    public var isGateway: Bool {
        serviceAccount == Self.gatewayServiceAccount && namespace == Self.gatewayNamespace
    }
}
