public import StarlingCore
public import X509

/// A peer whose certificate chain verified against a ``TrustBundle``.
public struct VerifiedPeer: Sendable, Hashable {
    /// The mesh identity the leaf names; nil only when verification did not require one.
    public var identity: MeshIdentity?
    /// The verified chain, leaf first, ending at the trust anchor.
    public var chain: [Certificate]

    public init(identity: MeshIdentity?, chain: [Certificate]) {
        self.identity = identity
        self.chain = chain
    }

    /// The leaf certificate.
    public var leaf: Certificate? { chain.first }
}
