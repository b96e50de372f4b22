public import Foundation
import StarlingCore
import SwiftASN1
public import X509

/// What `starling certs inspect` shows about a certificate, as JSON (`Codable`) or as aligned text
/// like `step certificate inspect --short` / `openssl x509 -text`.
public struct CertificateSummary: Codable, Sendable, Hashable {
    /// The subject alternative names, by kind.
    public struct AlternativeNames: Codable, Sendable, Hashable {
        public var dns: [String]
        public var ip: [String]
        public var uri: [String]

        public init(dns: [String] = [], ip: [String] = [], uri: [String] = []) {
            self.dns = dns
            self.ip = ip
            self.uri = uri
        }
    }

    /// RFC 4514 subject, e.g. `CN=identity.starling.cluster.local`.
    public var subject: String
    /// RFC 4514 issuer.
    public var issuer: String
    /// Serial number, lower-case hex.
    public var serial: String
    public var sans: AlternativeNames
    /// RFC 3339.
    public var notBefore: String
    /// RFC 3339.
    public var notAfter: String
    /// basicConstraints CA:TRUE.
    public var isCA: Bool
    /// basicConstraints pathLenConstraint, when a CA has one.
    public var pathLen: Int?
    /// keyUsage bits by name (`digitalSignature`, `keyCertSign`, `cRLSign`, …).
    public var keyUsage: [String]
    /// extendedKeyUsage by name (`serverAuth`, `clientAuth`, …).
    public var extendedKeyUsage: [String]
    /// `ECDSA P-256`, `ECDSA P-384`, `RSA 2048`, `Ed25519`.
    public var keyType: String
    /// `SHA256:` fingerprint of the DER, upper-case colon-separated hex.
    public var sha256Fingerprint: String
    /// The mesh identity named by the SANs, if any (`SA.NS.serviceaccount.identity.starling.TD`).
    public var meshIdentity: String?
    /// Whether the certificate is self-signed (subject == issuer and its own key verifies it).
    public var selfSigned: Bool
    /// `ok`, or why verification against the given roots failed; nil when no roots were given.
    public var verification: String?

    /// Summarises `cert`. When `roots` is given, also verifies `cert` against them at `now`, using
    /// `chain` as intermediates.
    public static func summarize(
        _ cert: Certificate,
        chain: [Certificate] = [],
        roots: [Certificate]? = nil,
        now: Date
    ) -> CertificateSummary {
        let names = cert.alternativeNames
        var pathLen: Int?
        if case .isCertificateAuthority(let maxPathLength) = (try? cert.extensions.basicConstraints)
            ?? .notCertificateAuthority
        {
            pathLen = maxPathLength
        }
        var verification: String?
        if let roots {
            switch ChainBuilder(anchors: roots, intermediates: chain).build(from: cert, at: now) {
            case .success: verification = "ok"
            case .failure(let failure): verification = failure.describe(anchors: roots)
            }
        }
        return CertificateSummary(
            subject: cert.subject.description,
            issuer: cert.issuer.description,
            serial: cert.serialNumber.hex,
            sans: AlternativeNames(dns: names.dns, ip: names.ip, uri: names.uri),
            notBefore: RFC3339.format(cert.notValidBefore),
            notAfter: RFC3339.format(cert.notValidAfter),
            isCA: cert.isCertificateAuthority,
            pathLen: pathLen,
            keyUsage: keyUsageNames(cert),
            extendedKeyUsage: extendedKeyUsageNames(cert),
            keyType: keyTypeName(cert.publicKey),
            sha256Fingerprint: cert.sha256Fingerprint,
            meshIdentity: cert.meshIdentities.first?.dnsName,
            selfSigned: cert.subject == cert.issuer && cert.isSigned(by: cert),
            verification: verification
        )
    }

    /// Aligned `key: value` lines for people.
    public func text() -> String {
        var rows: [(String, String)] = [
            ("Subject", subject),
            ("Issuer", issuer),
            ("Serial", serial),
            ("Not Before", notBefore),
            ("Not After", notAfter),
            ("Key", keyType),
            ("CA", isCA ? (pathLen.map { "true (path length \($0))" } ?? "true") : "false"),
        ]
        if !keyUsage.isEmpty { rows.append(("Key Usage", keyUsage.joined(separator: ", "))) }
        if !extendedKeyUsage.isEmpty { rows.append(("Ext Key Usage", extendedKeyUsage.joined(separator: ", "))) }
        if !sans.dns.isEmpty { rows.append(("DNS Names", sans.dns.joined(separator: ", "))) }
        if !sans.ip.isEmpty { rows.append(("IP Addresses", sans.ip.joined(separator: ", "))) }
        if !sans.uri.isEmpty { rows.append(("URIs", sans.uri.joined(separator: ", "))) }
        if let meshIdentity { rows.append(("Mesh Identity", meshIdentity)) }
        if selfSigned { rows.append(("Self-Signed", "true")) }
        rows.append(("SHA256", sha256Fingerprint))
        if let verification { rows.append(("Verification", verification)) }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { key, value in
            key + ":" + String(repeating: " ", count: width - key.count + 1) + value
        }.joined(separator: "\n") + "\n"
    }

    /// Names the key from its SubjectPublicKeyInfo: `ECDSA P-256`, `RSA 2048`, `Ed25519`, ….
    static func keyTypeName(_ key: Certificate.PublicKey) -> String {
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(key)) != nil,
            case .constructed(let spki) = (try? DER.parse(serializer.serializedBytes))?.content,
            let algorithmNode = spki.first(where: { _ in true }),
            case .constructed(let algorithm) = algorithmNode.content,
            let oidNode = algorithm.first(where: { _ in true }),
            let oid = try? ASN1ObjectIdentifier(derEncoded: oidNode)
        else { return "unknown" }
        let parameters = Array(algorithm.dropFirst())
        switch oid {
        case PrivateKeyDecoder.OID.ecPublicKey:
            guard let curveNode = parameters.first, let curve = try? ASN1ObjectIdentifier(derEncoded: curveNode) else {
                return "ECDSA (explicit parameters)"
            }
            let name = PrivateKeyDecoder.curveName(curve)
            return "ECDSA " + (name.split(separator: " ").first.map(String.init) ?? name)
        case PrivateKeyDecoder.OID.rsaEncryption, PrivateKeyDecoder.OID.rsaPSS:
            let nodes = Array(spki)
            guard nodes.count == 2, let bits = try? ASN1BitString(derEncoded: nodes[1]),
                case .constructed(let rsa) = (try? DER.parse(bits.bytes))?.content,
                let modulusNode = rsa.first(where: { _ in true }),
                case .primitive(let modulus) = modulusNode.content
            else { return "RSA" }
            return "RSA \(modulus.drop { $0 == 0 }.count * 8)"
        default:
            return PrivateKeyDecoder.algorithmName(oid)
        }
    }

    private static func keyUsageNames(_ cert: Certificate) -> [String] {
        guard let usage = try? cert.extensions.keyUsage else { return [] }
        let all: [(Bool, String)] = [
            (usage.digitalSignature, "digitalSignature"), (usage.nonRepudiation, "nonRepudiation"),
            (usage.keyEncipherment, "keyEncipherment"), (usage.dataEncipherment, "dataEncipherment"),
            (usage.keyAgreement, "keyAgreement"), (usage.keyCertSign, "keyCertSign"), (usage.cRLSign, "cRLSign"),
            (usage.encipherOnly, "encipherOnly"), (usage.decipherOnly, "decipherOnly"),
        ]
        return all.filter(\.0).map(\.1)
    }

    private static func extendedKeyUsageNames(_ cert: Certificate) -> [String] {
        guard let usages = try? cert.extensions.extendedKeyUsage else { return [] }
        return usages.map { usage in
            switch usage {
            case .serverAuth: return "serverAuth"
            case .clientAuth: return "clientAuth"
            case .codeSigning: return "codeSigning"
            case .emailProtection: return "emailProtection"
            case .timeStamping: return "timeStamping"
            case .ocspSigning: return "OCSPSigning"
            case .any: return "anyExtendedKeyUsage"
            default: return usage.description
            }
        }
    }
}
