public import Foundation
import StarlingCore
import SwiftASN1
public import X509

/// The rules a mesh listener (the inbound, the gateway) adds to BoringSSL's verification of a
/// client's chain, and the reason a user reads when a chain is refused.
///
/// BoringSSL verifies the chain to the trust anchors (signatures, CA constraints, expiry, the
/// `ssl_client` purpose) and calls its verify callback once per certificate it looks at:
/// `preverified == false` for a certificate that broke one of those rules (the handshake then
/// fails; ``evaluate(_:preverified:now:)`` names why), and `true` once for each certificate of the
/// verified path, the anchor first and the leaf last. On those it adds:
///
/// - the verified path has at most ``maximumPathLength`` certificates: the anchor, at most two
///   intermediates (the mesh's issuer, and one CA above it for an issuer signed by an
///   organisation's intermediate), and the leaf;
/// - a certificate that names a mesh identity is a workload leaf: it must not be a CA, must allow
///   TLS client authentication (extendedKeyUsage clientAuth, present — BoringSSL accepts a leaf
///   with no extendedKeyUsage at all), and must name nothing but its mesh identity (no IP
///   address, e-mail or other DNS name).
///
/// A leaf that names no mesh identity at all passes here and is refused once the handshake
/// completes, when the listener reads the peer's identity.
///
/// Runs synchronously inside the handshake, so a refused client gets a TLS alert. A value per
/// connection; not thread-safe (it lives on the connection's event loop).
public struct ClientCertificateRules: Sendable {
    /// Anchor, two intermediates, leaf.
    public static let defaultMaximumPathLength = 4

    /// The longest verified path accepted, anchor and leaf included.
    public var maximumPathLength: Int
    /// Why the chain was refused, once it was.
    public private(set) var refusal: MeshTLSError?
    private var verified = 0

    public init(maximumPathLength: Int = defaultMaximumPathLength) {
        self.maximumPathLength = maximumPathLength
    }

    /// One verify-callback call: returns whether BoringSSL may go on (false fails the handshake
    /// and sets ``refusal``).
    public mutating func evaluate(_ certificate: Certificate, preverified: Bool, now: Date = Date()) -> Bool {
        guard refusal == nil else { return false }
        guard preverified else {
            refusal = Self.diagnose(certificate, now: now)
            return false
        }
        verified += 1
        if verified > maximumPathLength {
            refusal = MeshTLSError(
                .chainTooLong,
                "the client's chain is longer than allowed: '\(certificate.subject)' is certificate \(verified) "
                    + "counting from the trust anchor, and at most \(maximumPathLength) are accepted "
                    + "(anchor, \(maximumPathLength - 2) intermediates, leaf)")
            return false
        }
        if let problem = Self.leafProblem(certificate) {
            refusal = problem
            return false
        }
        return true
    }

    /// Records `reason` as the refusal, unless one was recorded already (the first one is what
    /// BoringSSL stopped on).
    mutating func refuse(_ reason: MeshTLSError) {
        if refusal == nil { refusal = reason }
    }

    // MARK: - Rules

    /// What is wrong with a certificate that names a mesh identity as a client leaf; nil when it
    /// names none (an anchor or intermediate) or is a proper client leaf.
    static func leafProblem(_ certificate: Certificate) -> MeshTLSError? {
        let names = Names(certificate)
        guard let identity = names.identities.first else { return nil }
        let subject = certificate.subject.description
        if case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority {
            return MeshTLSError(
                .caCertificateAsLeaf,
                "certificate '\(subject)' (identity \(identity)) is a CA certificate (basicConstraints CA:TRUE) "
                    + "used as a client leaf")
        }
        if let problem = clientUsageProblem(certificate, required: true) {
            return MeshTLSError(.noClientAuthUsage, "certificate '\(subject)' (identity \(identity)) \(problem)")
        }
        if !names.others.isEmpty {
            return MeshTLSError(
                .nonMeshName,
                "certificate '\(subject)' names \(names.others.joined(separator: ", ")) besides its mesh identity "
                    + "\(identity); a workload certificate names only its identity (DNS and spiffe:// URI SANs)")
        }
        return nil
    }

    /// Why BoringSSL refused `certificate`: expiry first (what it checks per certificate), then
    /// the leaf's usage, else a chain that does not lead to the anchors.
    static func diagnose(_ certificate: Certificate, now: Date) -> MeshTLSError {
        let subject = certificate.subject.description
        if now > certificate.notValidAfter {
            return MeshTLSError(
                .certificateExpired, "certificate '\(subject)' expired at \(format(certificate.notValidAfter))")
        }
        if now < certificate.notValidBefore {
            return MeshTLSError(
                .certificateNotYetValid,
                "certificate '\(subject)' is not valid before \(format(certificate.notValidBefore))")
        }
        if !Names(certificate).identities.isEmpty, let problem = clientUsageProblem(certificate, required: false) {
            return MeshTLSError(.noClientAuthUsage, "certificate '\(subject)' \(problem)")
        }
        // Names alone do not tell two roots apart (every mesh root may be called
        // identity.starling.cluster.local): the authority key identifier does.
        let keyID = (try? certificate.extensions.authorityKeyIdentifier)?.keyIdentifier.map {
            ", key id " + $0.prefix(8).map { String(format: "%02x", $0) }.joined()
        }
        return MeshTLSError(
            .unknownAuthority,
            "certificate '\(subject)' is issued by an unknown authority ('\(certificate.issuer)'\(keyID ?? "")): "
                + "it does not chain to the mesh's trust anchors")
    }

    /// Why `certificate` cannot authenticate a TLS client: an extendedKeyUsage without clientAuth
    /// (or, when `required`, none at all), or a keyUsage without digitalSignature.
    static func clientUsageProblem(_ certificate: Certificate, required: Bool) -> String? {
        let usages = (try? certificate.extensions.extendedKeyUsage).map { Array($0) }
        if let usages {
            if !usages.contains(.clientAuth) && !usages.contains(.any) {
                let listed = usages.map { usage -> String in
                    switch usage {
                    case .serverAuth: "serverAuth"
                    case .codeSigning: "codeSigning"
                    case .emailProtection: "emailProtection"
                    case .timeStamping: "timeStamping"
                    case .ocspSigning: "OCSPSigning"
                    default: "\(usage)"
                    }
                }
                return "is not for TLS client authentication: its extendedKeyUsage is "
                    + "\(listed.isEmpty ? "empty" : listed.joined(separator: ", ")), without clientAuth"
            }
        } else if required {
            return "is not for TLS client authentication: it has no extendedKeyUsage (clientAuth is required)"
        }
        if let keyUsage = try? certificate.extensions.keyUsage, !keyUsage.digitalSignature {
            return "is not for TLS client authentication: its keyUsage lacks digitalSignature"
        }
        return nil
    }

    private static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// A certificate's subject alternative names: the mesh identities, and everything else.
    struct Names {
        var identities: [MeshIdentity] = []
        var others: [String] = []

        init(_ certificate: Certificate) {
            guard let names = try? certificate.extensions.subjectAlternativeNames else { return }
            for name in names {
                switch name {
                case .uniformResourceIdentifier(let uri):
                    if let identity = MeshIdentity(spiffeURI: uri) { identities.append(identity) } else { others.append("URI \(uri)") }
                case .dnsName(let dns):
                    if let identity = MeshIdentity(dnsName: dns) { identities.append(identity) } else { others.append("DNS \(dns)") }
                case .ipAddress(let bytes):
                    others.append("IP \(Self.ip(Array(bytes.bytes)))")
                case .rfc822Name(let mail):
                    others.append("email \(mail)")
                default:
                    others.append("\(name)")
                }
            }
        }

        static func ip(_ bytes: [UInt8]) -> String {
            if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
            if bytes.count == 16 {
                return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                    .joined(separator: ":")
            }
            return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
    }
}

extension ClientCertificateRules {
    /// The subject alternative names of a leaf that names no mesh identity, for the refusal
    /// message ("names no mesh identity (its SANs: IP 127.0.0.1)").
    public static func describeNames(_ certificate: Certificate) -> String {
        let names = Names(certificate)
        let all = names.identities.map { "\($0)" } + names.others
        return all.isEmpty ? "no subject alternative names" : "SANs: " + all.joined(separator: ", ")
    }
}
