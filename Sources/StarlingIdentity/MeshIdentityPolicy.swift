import StarlingCore
public import SwiftASN1
public import X509

/// A verifier policy: the leaf must name exactly one mesh identity (its SPIFFE URI SAN and/or its
/// `…serviceaccount.identity.starling.TD` DNS SAN, which must agree), and that identity must belong
/// to `trustDomain`.
///
/// Expiry and chain rules are RFC 5280's (`RFC5280Policy`); this policy only adds the mesh rule.
public struct MeshIdentityPolicy: VerifierPolicy, Sendable {
    public let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = []
    /// The trust domain the peer's identity must be in.
    public var trustDomain: String

    public init(trustDomain: String) {
        self.trustDomain = trustDomain
    }

    public func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        evaluate(leaf: chain.leaf)
    }

    /// The policy's decision for `leaf`, usable without a `Verifier`.
    public func evaluate(leaf: Certificate) -> PolicyEvaluationResult {
        let identities = leaf.meshIdentities
        let subject = leaf.subject.description
        guard let identity = identities.first else {
            return .failsToMeetPolicy(
                reason:
                    "'\(subject)' carries no mesh identity SAN (spiffe://… URI or …serviceaccount.identity.starling.… DNS name)"
            )
        }
        if let other = identities.first(where: { $0 != identity }) {
            return .failsToMeetPolicy(
                reason: "'\(subject)' names two different mesh identities: \(identity) and \(other)"
            )
        }
        let domain = trustDomain
        guard identity.trustDomain == domain else {
            return .failsToMeetPolicy(
                reason:
                    "'\(subject)' has identity \(identity) of trust domain '\(identity.trustDomain)', not '\(domain)'"
            )
        }
        return .meetsPolicy
    }
}
