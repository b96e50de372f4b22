public import StarlingCore
public import SwiftASN1
public import X509

/// A verifier policy: the leaf must be the given mesh identity (a client checking that it reached
/// the server it meant to, or a server only accepting one peer).
public struct ExpectedIdentityPolicy: VerifierPolicy, Sendable {
    public let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = []
    /// The only identity accepted.
    public var expected: MeshIdentity

    public init(_ expected: MeshIdentity) {
        self.expected = expected
    }

    public func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        evaluate(leaf: chain.leaf)
    }

    /// The policy's decision for `leaf`, usable without a `Verifier`.
    public func evaluate(leaf: Certificate) -> PolicyEvaluationResult {
        let identities = leaf.meshIdentities
        let wanted = expected
        guard !identities.isEmpty, identities.allSatisfy({ $0 == wanted }) else {
            let found = identities.isEmpty ? "no mesh identity" : identities.map(\.description).joined(separator: ", ")
            return .failsToMeetPolicy(reason: "expected peer identity \(wanted) but the certificate names \(found)")
        }
        return .meetsPolicy
    }
}
