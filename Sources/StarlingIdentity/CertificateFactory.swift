public import Crypto
public import Foundation
import SwiftASN1
public import X509

/// Makes root and issuer CAs (and plain leaves) the way `step certificate create` does, for
/// `starling certs create`. Keys are ECDSA P-256, signatures ECDSA with SHA-256.
public enum CertificateFactory {
    /// Shorthand for ``CertificateRequest``.
    public typealias Request = CertificateRequest

    /// Creates a new key and a certificate for it as `request` describes.
    ///
    /// - Roots are self-signed with CN=subject, critical CA:TRUE and keyCertSign + cRLSign, and a
    ///   subject key identifier.
    /// - Intermediates are CA:TRUE pathlen 0 and signed by the issuer, which must be a CA whose key
    ///   matches its certificate; they carry an authority key identifier.
    /// - Leaves carry digitalSignature, serverAuth + clientAuth and the subject as a DNS SAN.
    public static func create(
        _ request: CertificateRequest,
        now: Date = Date()
    ) throws(IdentityError) -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let subject = request.subject.trimmingCharacters(in: .whitespaces)
        guard !subject.isEmpty else {
            throw .invalidArgument("the certificate subject (SUBJECT) is empty")
        }
        let notBefore = (request.notBefore ?? now).wholeSeconds
        let notAfter = (request.notAfter ?? notBefore.addingTimeInterval(request.profile.defaultValidity)).wholeSeconds
        guard notAfter > notBefore else {
            throw .invalidArgument(
                "--not-after \(RFC3339.format(notAfter)) is not after --not-before \(RFC3339.format(notBefore))"
            )
        }

        var names: [GeneralName] = []
        // Like step, a leaf's subject doubles as a SAN when it is a DNS name, IP or URI.
        if request.profile == .leaf, let name = try? SubjectAltName.parse(subject, source: "SUBJECT") {
            names.append(name)
        }
        for san in request.sans {
            let name = try SubjectAltName.parse(san)
            if !names.contains(name) { names.append(name) }
        }

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subjectName: DistinguishedName
        do {
            subjectName = try DistinguishedName { CommonName(subject) }
        } catch {
            throw .invalidArgument("the subject '\(subject)' cannot be used as a common name", cause: error)
        }

        let signer: (name: DistinguishedName, key: P256.Signing.PrivateKey, keyIdentifier: ArraySlice<UInt8>)
        if request.profile == .rootCA {
            guard request.issuer == nil else {
                throw .invalidArgument("--profile root-ca makes a self-signed certificate; do not pass --ca/--ca-key")
            }
            signer = (subjectName, key, SubjectKeyIdentifier(hash: publicKey).keyIdentifier)
        } else {
            guard let issuer = request.issuer else {
                throw .invalidArgument(
                    "--profile \(request.profile) needs the signing CA: pass --ca CERT and --ca-key KEY"
                )
            }
            try checkSigningCA(issuer.certificate, key: issuer.key, now: now)
            signer = (issuer.certificate.subject, issuer.key, issuer.certificate.keyIdentifier)
        }

        let extensions: Certificate.Extensions
        do {
            extensions = try makeExtensions(
                profile: request.profile,
                publicKey: publicKey,
                authorityKeyIdentifier: request.profile == .rootCA ? nil : signer.keyIdentifier,
                names: names
            )
        } catch {
            throw .invalidArgument("cannot encode the extensions for '\(subject)'", cause: error)
        }

        do {
            let certificate = try Certificate(
                version: .v3,
                serialNumber: .random128(),
                publicKey: publicKey,
                notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: signer.name,
                subject: subjectName,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(signer.key)
            )
            return (certificate, key)
        } catch {
            throw .internalError("signing the certificate for '\(subject)' failed", cause: error)
        }
    }

    /// Parses a `--not-before` / `--not-after` value: a duration relative to `now` (`8760h`, `90m`,
    /// `30s`, `1h30m`, `-5m`, `1.5h`; units ns, us, µs, ms, s, m, h, and d for days) or an RFC 3339
    /// time (`2030-01-01T00:00:00Z`).
    public static func parseTime(_ text: String, now: Date) throws(IdentityError) -> Date {
        let value = text.trimmingCharacters(in: .whitespaces)
        if let date = RFC3339.parse(value) {
            return date
        }
        guard let seconds = GoDuration.parse(value) else {
            throw .invalidArgument(
                "'\(text)' is neither a duration (e.g. 8760h, 90m, -5m, 1h30m) nor an RFC 3339 time (e.g. 2030-01-01T00:00:00Z)"
            )
        }
        return now.addingTimeInterval(seconds)
    }

    /// A human summary of `cert` (see ``CertificateSummary/summarize(_:chain:roots:now:)``).
    public static func summarize(
        _ cert: Certificate,
        chain: [Certificate] = [],
        roots: [Certificate]? = nil,
        now: Date = Date()
    ) -> CertificateSummary {
        CertificateSummary.summarize(cert, chain: chain, roots: roots, now: now)
    }

    /// Refuses an issuer that is not a CA, whose key is not its own, or that is not valid at `now`.
    static func checkSigningCA(_ certificate: Certificate, key: P256.Signing.PrivateKey, now: Date)
        throws(IdentityError)
    {
        let name = certificate.subject.description
        guard certificate.isCertificateAuthority else {
            throw IdentityError(
                code: .notACA,
                message: "the issuer '\(name)' is not a certificate authority (its basicConstraints lack CA:TRUE)"
            )
        }
        if let usage = try? certificate.extensions.keyUsage, !usage.keyCertSign {
            throw IdentityError(
                code: .notACA,
                message: "the issuer '\(name)' may not sign certificates (keyUsage lacks keyCertSign)"
            )
        }
        guard certificate.isMatched(by: key) else {
            throw IdentityError(
                code: .keyMismatch,
                message: "the issuer key does not belong to the issuer certificate '\(name)'"
            )
        }
        guard now <= certificate.notValidAfter else {
            throw IdentityError(
                code: .expired,
                message: "the issuer '\(name)' expired at \(RFC3339.format(certificate.notValidAfter))"
            )
        }
        guard now >= certificate.notValidBefore else {
            throw IdentityError(
                code: .notYetValid,
                message: "the issuer '\(name)' is not valid before \(RFC3339.format(certificate.notValidBefore))"
            )
        }
    }

    private static func makeExtensions(
        profile: CertificateRequest.Profile,
        publicKey: Certificate.PublicKey,
        authorityKeyIdentifier: ArraySlice<UInt8>?,
        names: [GeneralName]
    ) throws -> Certificate.Extensions {
        var extensions = Certificate.Extensions()
        switch profile {
        case .rootCA:
            try extensions.append(.init(BasicConstraints.isCertificateAuthority(maxPathLength: nil), critical: true))
            try extensions.append(.init(KeyUsage(keyCertSign: true, cRLSign: true), critical: true))
        case .intermediateCA:
            try extensions.append(.init(BasicConstraints.isCertificateAuthority(maxPathLength: 0), critical: true))
            try extensions.append(.init(KeyUsage(keyCertSign: true, cRLSign: true), critical: true))
        default:
            try extensions.append(.init(KeyUsage(digitalSignature: true), critical: true))
            try extensions.append(.init(ExtendedKeyUsage([.serverAuth, .clientAuth]), critical: false))
        }
        try extensions.append(.init(SubjectKeyIdentifier(hash: publicKey), critical: false))
        if let authorityKeyIdentifier {
            try extensions.append(.init(AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier), critical: false))
        }
        if !names.isEmpty {
            try extensions.append(.init(SubjectAlternativeNames(names), critical: false))
        }
        return extensions
    }
}
