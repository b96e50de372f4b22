public import Crypto
public import Foundation
import SwiftASN1
public import X509

/// The controller API's TLS server certificate: self-signed, and trusted by clients that pin it as
/// their only root (the credentials file carries it).
///
/// It is CA:FALSE with extendedKeyUsage serverAuth and deliberately carries *no* keyUsage extension:
/// OpenSSL and BoringSSL only treat a certificate as self-signed (and so accept it as its own trust
/// anchor) when it has no keyUsage or its keyUsage includes keyCertSign, and CA:FALSE keeps the key
/// from being usable to sign other certificates that such a client would trust.
public enum ServingCertificate {
    /// Makes a key and a self-signed server certificate for `commonName`, the given IP and DNS SANs,
    /// valid from one minute before `now` for `validity` seconds.
    public static func selfSigned(
        commonName: String,
        ipAddresses: [String],
        dnsNames: [String] = [],
        validity: TimeInterval = 365 * 86400,
        now: Date = Date()
    ) throws(IdentityError) -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        guard !commonName.isEmpty else {
            throw .invalidArgument("the serving certificate's common name is empty")
        }
        guard validity > 0 else {
            throw .invalidArgument("the serving certificate's validity (\(validity)s) must be positive")
        }
        var names: [GeneralName] = []
        for ip in ipAddresses {
            guard let bytes = SubjectAltName.parseIP(ip) else {
                throw .invalidArgument("'\(ip)' is not an IPv4 or IPv6 address (serving certificate IP SAN)")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        for dns in dnsNames {
            guard SubjectAltName.isValidDNSName(dns) else {
                throw .invalidArgument("'\(dns)' is not a DNS name (serving certificate DNS SAN)")
            }
            names.append(.dnsName(dns.lowercased()))
        }
        guard !names.isEmpty else {
            throw .invalidArgument(
                "the serving certificate for '\(commonName)' needs at least one IP address or DNS name"
            )
        }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        do {
            let name = try DistinguishedName { CommonName(commonName) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(hash: publicKey)
                SubjectAlternativeNames(names)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: .random128(),
                publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-60).wholeSeconds,
                notValidAfter: now.addingTimeInterval(validity).wholeSeconds,
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
            return (certificate, key)
        } catch {
            throw .internalError("making the serving certificate for '\(commonName)' failed", cause: error)
        }
    }
}
