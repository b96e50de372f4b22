public import Crypto
public import StarlingCore
import SwiftASN1
public import X509

/// A workload's private key, kept in memory by the proxy, and the CSRs it sends to the issuer.
///
/// `@unchecked Sendable`: swift-crypto does not mark `P256.Signing.PrivateKey` `Sendable` on Linux,
/// but the key is immutable once made and BoringSSL signing with it is thread-safe (X509's own
/// `Certificate.PrivateKey`, which wraps the same type, is `Sendable` for the same reason).
public struct WorkloadKey: @unchecked Sendable {
    /// The ECDSA P-256 key.
    public let privateKey: P256.Signing.PrivateKey

    /// A fresh random key.
    public init() {
        self.privateKey = P256.Signing.PrivateKey()
    }

    /// Wraps an existing key.
    public init(privateKey: P256.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    /// A PKCS#10 request for `identity`: CN = its DNS name, and an extension request for the DNS SAN
    /// and the SPIFFE URI SAN.
    public func csr(for identity: MeshIdentity) throws(IdentityError) -> (der: [UInt8], pem: String) {
        do {
            let extensions = try Certificate.Extensions {
                SubjectAlternativeNames([.dnsName(identity.dnsName), .uniformResourceIdentifier(identity.spiffeURI)])
            }
            let attributes = CertificateSigningRequest.Attributes([
                try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions))
            ])
            let csr = try CertificateSigningRequest(
                version: .v1,
                subject: DistinguishedName { CommonName(identity.dnsName) },
                privateKey: Certificate.PrivateKey(privateKey),
                attributes: attributes,
                signatureAlgorithm: .ecdsaWithSHA256
            )
            var serializer = DER.Serializer()
            try serializer.serialize(csr)
            let der = serializer.serializedBytes
            return (der, PEMBlock.encode(label: "CERTIFICATE REQUEST", der: der))
        } catch {
            throw .internalError("making the certificate signing request for \(identity) failed", cause: error)
        }
    }

    /// The key as PKCS#8 PEM (for tools that need it on disk; the proxy keeps it in memory).
    public var pem: String { PEMFile.pem(privateKey) }

    /// True when `certificate` is for this key.
    public func matches(_ certificate: Certificate) -> Bool {
        certificate.isMatched(by: privateKey)
    }
}
