public import StarlingCore

/// One place a request or connection can go: a peer proxy's inbound address (meshed), or a
/// plain address (not meshed, when `identity` is nil).
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The identity the peer must present; nil for an endpoint outside the mesh.
    public var identity: MeshIdentity?
    /// The port carries opaque TCP: no protocol detection, bytes forwarded as they are.
    public var opaque: Bool
    /// For mirrored services: the authority to name to the remote gateway.
    public var authorityOverride: String?
    /// Labels for metrics (workload, namespace, ...).
    public var labels: [String: String]

    public init(
        host: String, port: Int, identity: MeshIdentity? = nil, opaque: Bool = false,
        authorityOverride: String? = nil, labels: [String: String] = [:]
    ) {
        self.host = host
        self.port = port
        self.identity = identity
        self.opaque = opaque
        self.authorityOverride = authorityOverride
        self.labels = labels
    }

    public var description: String { "\(host):\(port)" }
}
