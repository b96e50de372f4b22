public import Crypto
public import Foundation
public import StarlingCore
@_spi(FixedExpiryValidationTime) public import X509

/// The mesh's trust anchors (roots shared by every linked cluster) and its trust domain.
///
/// Peers are verified with X509's `Verifier` composed of `RFC5280Policy` (signatures, CA rules,
/// path length, expiry) and ``MeshIdentityPolicy`` (a mesh identity of this trust domain), plus
/// ``ExpectedIdentityPolicy`` when the caller expects a particular peer.
public struct TrustBundle: Sendable, Hashable {
    /// The root certificates.
    public let anchors: [Certificate]
    /// The trust domain peer identities must be in, e.g. `cluster.local`.
    public let trustDomain: String

    public init(anchors: [Certificate], trustDomain: String = "cluster.local") {
        self.anchors = anchors
        self.trustDomain = trustDomain
    }

    /// Reads the anchors from PEM (`--identity-trust-anchors-file`). Every certificate must be a CA.
    public init(pem: String, source: String, trustDomain: String = "cluster.local") throws(IdentityError) {
        let certificates = try PEMFile.certificates(pem: pem, source: source)
        for (index, certificate) in certificates.enumerated() where !certificate.isCertificateAuthority {
            throw IdentityError(
                code: .notACA,
                message: "trust anchor \(index + 1) in \(source) ('\(certificate.subject)') is not a CA certificate"
            )
        }
        self.init(anchors: certificates, trustDomain: trustDomain)
    }

    /// The anchors as a PEM bundle.
    public var pem: String { PEMFile.pem(anchors) }

    /// One name for this set of anchors, whatever their order: the SHA-256 fingerprints of the
    /// anchors, sorted and joined by commas. A proxy reports it so that `check` can tell which
    /// proxies already trust the roots of a rollover.
    public var fingerprint: String { anchors.map(\.sha256Fingerprint).sorted().joined(separator: ",") }

    /// The anchors' subjects, for messages.
    public var anchorSubjects: [String] { anchors.map { $0.subject.description } }

    /// Verifies a peer's chain (leaf first, then any intermediates it sent) at `time`.
    ///
    /// - Parameters:
    ///   - expecting: when given, the leaf must be exactly this identity.
    ///   - requiringIdentity: when false, a leaf without a mesh identity is accepted (for non-mesh
    ///     peers such as the controller's own clients); the identity is still reported if present.
    public func verify(
        chain: [Certificate],
        at time: Date = Date(),
        expecting: MeshIdentity? = nil,
        requiringIdentity: Bool = true
    ) async -> Result<VerifiedPeer, IdentityError> {
        guard let leaf = chain.first else {
            return .failure(IdentityError(code: .chainInvalid, message: "the peer presented no certificate"))
        }
        if time > leaf.notValidAfter {
            return .failure(
                IdentityError(
                    code: .expired,
                    message: "peer certificate '\(leaf.subject)' expired at \(RFC3339.format(leaf.notValidAfter))"
                )
            )
        }
        if time < leaf.notValidBefore {
            return .failure(
                IdentityError(
                    code: .notYetValid,
                    message:
                        "peer certificate '\(leaf.subject)' is not valid before \(RFC3339.format(leaf.notValidBefore))"
                )
            )
        }
        let meshPolicy: MeshIdentityPolicy? = requiringIdentity ? MeshIdentityPolicy(trustDomain: trustDomain) : nil
        let expectedPolicy = expecting.map { ExpectedIdentityPolicy($0) }
        var verifier = Verifier(rootCertificates: CertificateStore(anchors)) {
            RFC5280Policy(fixedExpiryValidationTime: time)
            if let meshPolicy { meshPolicy }
            if let expectedPolicy { expectedPolicy }
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        switch result {
        case .validCertificate(let validated):
            return .success(VerifiedPeer(identity: leaf.meshIdentities.first, chain: Array(validated)))
        case .couldNotValidate(let failures):
            if let expectedPolicy, case .failsToMeetPolicy(let reason) = expectedPolicy.evaluate(leaf: leaf) {
                return .failure(IdentityError(code: .identityMismatch, message: reason.description))
            }
            let reason: String
            if let first = failures.first {
                reason = "peer certificate '\(leaf.subject)' failed verification: \(first.policyFailureReason)"
            } else {
                reason = "peer certificate '\(leaf.subject)' is not signed by any of the trust anchors (\(subjectList))"
            }
            return .failure(IdentityError(code: .chainInvalid, message: reason))
        }
    }

    /// Checks an issuer (`starling install`, `starling check`, controller start-up): it must be a CA,
    /// its key must match its certificate, it must be valid at `now`, and it must chain to the
    /// anchors (through `chain` if it is not signed by an anchor directly).
    public func validateIssuer(
        certificate: Certificate,
        chain: [Certificate] = [],
        key: P256.Signing.PrivateKey,
        now: Date = Date()
    ) throws(IdentityError) -> IssuerStatus {
        let name = certificate.subject.description
        guard certificate.isCertificateAuthority else {
            throw IdentityError(
                code: .notACA,
                message:
                    "issuer '\(name)' is not a CA certificate (basicConstraints lacks CA:TRUE); make one with --profile intermediate-ca"
            )
        }
        guard certificate.isMatched(by: key) else {
            throw IdentityError(
                code: .keyMismatch,
                message: "the issuer key does not belong to issuer certificate '\(name)'"
            )
        }
        guard now <= certificate.notValidAfter else {
            throw IdentityError(
                code: .expired,
                message: "issuer '\(name)' expired at \(RFC3339.format(certificate.notValidAfter))"
            )
        }
        guard now >= certificate.notValidBefore else {
            throw IdentityError(
                code: .notYetValid,
                message: "issuer '\(name)' is not valid before \(RFC3339.format(certificate.notValidBefore))"
            )
        }
        switch ChainBuilder(anchors: anchors, intermediates: chain).build(from: certificate, at: now) {
        case .success(let path):
            return IssuerStatus(subject: name, notAfter: certificate.notValidAfter, checkedAt: now, path: path)
        case .failure(.noPathToAnchor):
            throw IdentityError(
                code: .chainInvalid,
                message: "issuer '\(name)' is not signed by any of the trust anchors (\(subjectList))"
            )
        case .failure(let failure):
            throw IdentityError(
                code: failure.code,
                message: "issuer '\(name)' does not chain to the trust anchors: "
                    + failure.describe(anchors: anchors)
            )
        }
    }

    private var subjectList: String {
        anchors.isEmpty ? "none configured" : anchorSubjects.map { "'\($0)'" }.joined(separator: ", ")
    }
}
