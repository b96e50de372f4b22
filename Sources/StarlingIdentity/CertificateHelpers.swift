import Crypto
import Foundation
import StarlingCore
import SwiftASN1
public import X509

extension Certificate {
    /// The certificate's DER encoding.
    ///
    /// A `Certificate` keeps the exact bytes it was parsed from or signed over, so serialising it only
    /// copies them; a failure here would be a bug in swift-certificates, not bad input.
    var derBytes: [UInt8] {
        var serializer = DER.Serializer()
        do {
            try serializer.serialize(self)
        } catch {
            preconditionFailure("swift-certificates failed to re-serialise a certificate: \(error)")
        }
        return serializer.serializedBytes
    }

    /// The subject's common name, if any.
    var commonName: String? { subject.commonName }

    /// `basicConstraints` says CA:TRUE.
    var isCertificateAuthority: Bool {
        if case .isCertificateAuthority = (try? extensions.basicConstraints) ?? .notCertificateAuthority {
            return true
        }
        return false
    }

    /// The DNS, IP and URI subject alternative names.
    var alternativeNames: (dns: [String], ip: [String], uri: [String]) {
        var dns: [String] = []
        var ip: [String] = []
        var uri: [String] = []
        for name in (try? extensions.subjectAlternativeNames) ?? SubjectAlternativeNames() {
            switch name {
            case .dnsName(let value): dns.append(value)
            case .ipAddress(let bytes): ip.append(SubjectAltName.formatIP(Array(bytes.bytes)))
            case .uniformResourceIdentifier(let value): uri.append(value)
            default: break
            }
        }
        return (dns, ip, uri)
    }

    /// Every mesh identity named by the URI (SPIFFE) and DNS SANs, URI SANs first.
    var meshIdentities: [MeshIdentity] {
        let names = alternativeNames
        return names.uri.compactMap { MeshIdentity(spiffeURI: $0) } + names.dns.compactMap { MeshIdentity(dnsName: $0) }
    }

    /// The certificate's key when it is ECDSA P-256.
    var p256PublicKey: P256.Signing.PublicKey? { P256.Signing.PublicKey(publicKey) }

    /// True when `key` is the private half of this certificate's public key.
    func isMatched(by key: P256.Signing.PrivateKey) -> Bool {
        guard let mine = p256PublicKey else { return false }
        return mine.rawRepresentation == key.publicKey.rawRepresentation
    }

    /// True when `issuer`'s key verifies this certificate's signature.
    func isSigned(by issuer: Certificate) -> Bool {
        issuer.publicKey.isValidSignature(signature, for: self)
    }

    /// Subject key identifier: the one in the certificate, else SHA-1 of the public key (RFC 5280 §4.2.1.2).
    var keyIdentifier: ArraySlice<UInt8> {
        if let ski = try? extensions.subjectKeyIdentifier {
            return ski.keyIdentifier
        }
        return SubjectKeyIdentifier(hash: publicKey).keyIdentifier
    }

    /// Upper-case colon-separated SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` prints.
    public var sha256Fingerprint: String {
        SHA256.hash(data: derBytes).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}

extension DistinguishedName {
    /// The first common name, if any.
    var commonName: String? {
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value)
            }
        }
        return nil
    }
}

extension Certificate.SerialNumber {
    /// A random positive 128-bit serial number.
    static func random128() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in stride(from: 0, to: 16, by: 8) {
            let word = generator.next() as UInt64
            for j in 0..<8 { bytes[i + j] = UInt8(truncatingIfNeeded: word >> (j * 8)) }
        }
        // A positive INTEGER whose first byte is never zero: a zero first byte would be dropped,
        // leaving a first byte that may have its high bit set — a negative serial (1 in 128).
        bytes[0] = (bytes[0] & 0x3F) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// Lower-case hex, no separators.
    var hex: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}

extension Date {
    /// This time truncated to a whole second. Certificate times have one-second resolution, and
    /// swift-certificates rounds to the nearest second; truncating first keeps a not-before of
    /// "now" from landing in the future.
    var wholeSeconds: Date {
        Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down))
    }
}
