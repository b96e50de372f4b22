public import Crypto
public import Foundation
public import StarlingCore
import SwiftASN1
public import X509

/// The control plane's signer: turns a workload's certificate signing request into a short-lived
/// certificate for the identity the workload was granted (by its join token or service account).
///
/// The issuer is validated once, when made; `certify` is the hot path and does no PEM work, no chain
/// verification and no per-call set-up beyond the CSR itself.
public struct Issuer: Sendable {
    /// The issuer (intermediate CA) certificate.
    public let certificate: Certificate
    /// Certificates between the issuer and the anchor, issuer's parent first (often empty).
    public let chain: [Certificate]
    /// The anchors the issuer chains to.
    public let trust: TrustBundle
    /// The trust domain of every identity this issuer certifies.
    public let trustDomain: String
    /// The issuer's validity, as checked when it was made.
    public let status: IssuerStatus

    private let signingKey: Certificate.PrivateKey
    private let authorityKeyIdentifier: Certificate.Extension
    private let keyUsage: Certificate.Extension
    private let extendedKeyUsage: Certificate.Extension
    private let basicConstraints: Certificate.Extension
    private let tail: [Certificate]

    /// Makes an issuer, checking it with ``TrustBundle/validateIssuer(certificate:chain:key:now:)``:
    /// it must be an unexpired CA whose key matches and which chains to `trust`'s anchors.
    public init(
        certificate: Certificate,
        chain: [Certificate] = [],
        key: P256.Signing.PrivateKey,
        trust: TrustBundle,
        trustDomain: String,
        now: Date = Date()
    ) throws(IdentityError) {
        self.status = try trust.validateIssuer(certificate: certificate, chain: chain, key: key, now: now)
        guard !trustDomain.isEmpty else {
            throw .invalidArgument("the issuer's trust domain is empty")
        }
        self.certificate = certificate
        self.chain = chain
        self.trust = trust
        self.trustDomain = trustDomain
        self.signingKey = Certificate.PrivateKey(key)
        self.tail = [certificate] + chain
        do {
            self.authorityKeyIdentifier = try Certificate.Extension(
                AuthorityKeyIdentifier(keyIdentifier: certificate.keyIdentifier),
                critical: false
            )
            self.keyUsage = try Certificate.Extension(KeyUsage(digitalSignature: true), critical: true)
            self.extendedKeyUsage = try Certificate.Extension(
                ExtendedKeyUsage([.serverAuth, .clientAuth]),
                critical: false
            )
            self.basicConstraints = try Certificate.Extension(BasicConstraints.notCertificateAuthority, critical: true)
        } catch {
            throw .internalError("encoding the workload certificate extensions failed", cause: error)
        }
    }

    /// Certifies a PEM CSR (`CERTIFICATE REQUEST`). See ``certify(csrDER:granted:lifetime:now:)``.
    public func certify(
        csrPEM: String,
        granted: MeshIdentity,
        lifetime: TimeInterval = 86400,
        now: Date = Date()
    ) throws(IdentityError) -> [Certificate] {
        let csr = try PEMFile.certificateSigningRequest(pem: csrPEM, source: "the CSR from \(granted)")
        return try certify(csr: csr, granted: granted, lifetime: lifetime, now: now)
    }

    /// Certifies a DER CSR for `granted`, returning `[leaf, issuer, …chain]`.
    ///
    /// The CSR must be signed by its own (P-256) key and must ask for `granted` only: its requested
    /// SANs and its CN may name nothing but `granted.dnsName` / `granted.spiffeURI`. The leaf has
    /// CN and DNS SAN `granted.dnsName`, URI SAN `granted.spiffeURI`, digitalSignature,
    /// serverAuth + clientAuth, not-before one minute ago and not-after `now + lifetime` capped at
    /// the issuer's own expiry.
    public func certify(
        csrDER: [UInt8],
        granted: MeshIdentity,
        lifetime: TimeInterval = 86400,
        now: Date = Date()
    ) throws(IdentityError) -> [Certificate] {
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: csrDER)
        } catch {
            throw .malformedPEM("the CSR from \(granted) is not a valid PKCS#10 request", cause: error)
        }
        return try certify(csr: csr, granted: granted, lifetime: lifetime, now: now)
    }

    /// Certifies a parsed CSR. See ``certify(csrDER:granted:lifetime:now:)``.
    public func certify(
        csr: CertificateSigningRequest,
        granted: MeshIdentity,
        lifetime: TimeInterval = 86400,
        now: Date = Date()
    ) throws(IdentityError) -> [Certificate] {
        guard lifetime > 0 else {
            throw .invalidArgument("certificate lifetime \(lifetime)s for \(granted) must be positive")
        }
        guard granted.trustDomain == trustDomain else {
            throw IdentityError(
                code: .identityNotGranted,
                message:
                    "identity \(granted) is in trust domain '\(granted.trustDomain)', but this issuer certifies '\(trustDomain)'"
            )
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else {
            throw IdentityError(
                code: .unsupportedKey,
                message:
                    "the CSR from \(granted) carries a \(CertificateSummary.keyTypeName(csr.publicKey)) key; workloads must use ECDSA P-256"
            )
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw IdentityError(
                code: .csrSignatureInvalid,
                message: "the CSR from \(granted) is not signed by the key it carries (forged or corrupted)"
            )
        }
        try checkRequestedNames(csr, granted: granted)

        let dnsName = granted.dnsName
        let notBefore = now.addingTimeInterval(-60).wholeSeconds
        let notAfter = min(now.addingTimeInterval(lifetime).wholeSeconds, certificate.notValidAfter)
        do {
            let extensions = try Certificate.Extensions([
                basicConstraints,
                keyUsage,
                extendedKeyUsage,
                authorityKeyIdentifier,
                Certificate.Extension(SubjectKeyIdentifier(hash: csr.publicKey), critical: false),
                Certificate.Extension(
                    SubjectAlternativeNames([.dnsName(dnsName), .uniformResourceIdentifier(granted.spiffeURI)]),
                    critical: false
                ),
            ])
            let leaf = try Certificate(
                version: .v3,
                serialNumber: .random128(),
                publicKey: csr.publicKey,
                notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: certificate.subject,
                subject: DistinguishedName { CommonName(dnsName) },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: signingKey
            )
            return [leaf] + tail
        } catch {
            throw .internalError("signing the certificate for \(granted) failed", cause: error)
        }
    }

    /// Refuses a CSR whose CN or requested SANs name anything but `granted`.
    private func checkRequestedNames(_ csr: CertificateSigningRequest, granted: MeshIdentity) throws(IdentityError) {
        var requested: [String] = []
        var foreign: [String] = []
        if let cn = csr.subject.commonName {
            requested.append(cn)
            if cn != granted.dnsName && cn != granted.spiffeURI { foreign.append("CN=\(cn)") }
        }
        let sans: SubjectAlternativeNames?
        do {
            sans = try csr.attributes.extensionRequest?.extensions.subjectAlternativeNames
        } catch {
            throw .malformedPEM("the CSR from \(granted) has an unreadable extension request", cause: error)
        }
        for name in sans ?? SubjectAlternativeNames() {
            switch name {
            case .dnsName(let value):
                requested.append(value)
                if value.lowercased() != granted.dnsName.lowercased() { foreign.append("DNS:\(value)") }
            case .uniformResourceIdentifier(let value):
                requested.append(value)
                if value != granted.spiffeURI { foreign.append("URI:\(value)") }
            case .ipAddress(let bytes):
                foreign.append("IP:\(SubjectAltName.formatIP(Array(bytes.bytes)))")
            default:
                foreign.append("\(name)")
            }
        }
        if let first = foreign.first {
            let claimed = requested.lazy.compactMap { MeshIdentity(spiffeURI: $0) ?? MeshIdentity(dnsName: $0) }.first
            let asked = claimed.map { "identity \($0) (\(first))" } ?? first
            throw IdentityError(
                code: .identityNotGranted,
                message: "the CSR asks for \(asked), but the workload was granted identity \(granted) only"
            )
        }
        guard !requested.isEmpty else {
            throw IdentityError(
                code: .identityNotGranted,
                message: "the CSR names no identity; it must request \(granted.dnsName) or \(granted.spiffeURI)"
            )
        }
    }
}
