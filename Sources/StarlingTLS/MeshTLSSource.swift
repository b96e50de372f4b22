public import NIOSSL
public import StarlingCore

/// The TLS side of a workload's identity: what listeners and dialers ask for when they need mTLS.
///
/// Implementations swap their certificate when it renews; every call returns material for the
/// certificate in force at that moment, so new connections use the new certificate while open
/// ones keep theirs (renewal never drops a connection).
public protocol MeshTLSSource: Sendable {
    /// This workload's identity.
    var identity: MeshIdentity { get }

    /// A server context for inbound mTLS: TLS 1.3 only, presents this workload's chain, requires
    /// a client certificate that chains to the trust anchors and carries a mesh identity.
    func serverContext() throws -> NIOSSLContext

    /// A client handler for dialing a peer: TLS 1.3 only, presents this workload's chain,
    /// verifies the peer's chain to the trust anchors and — when `expecting` is given — that the
    /// peer's certificate names exactly that identity; anything else fails the handshake.
    /// `alpn` is offered in order (e.g. `["h2"]`, or `["starling-opaque"]`).
    func makeClientHandler(expecting: MeshIdentity?, alpn: [String]) throws -> NIOSSLClientHandler
}
