import Crypto
import SwiftASN1

/// Decodes the DER of a private key PEM block into a P-256 signing key, naming any other key type
/// or curve precisely so the error can say what was found.
enum PrivateKeyDecoder {
    /// Object identifiers Starling recognises in keys, with the names used in error messages.
    enum OID {
        static let ecPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
        static let rsaEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 1]
        static let rsaPSS: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 10]
        static let dsa: ASN1ObjectIdentifier = [1, 2, 840, 10040, 4, 1]
        static let ed25519: ASN1ObjectIdentifier = [1, 3, 101, 112]
        static let ed448: ASN1ObjectIdentifier = [1, 3, 101, 113]
        static let x25519: ASN1ObjectIdentifier = [1, 3, 101, 110]
        static let x448: ASN1ObjectIdentifier = [1, 3, 101, 111]
        static let p256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 3, 1, 7]
    }

    static func algorithmName(_ oid: ASN1ObjectIdentifier) -> String {
        switch oid {
        case OID.rsaEncryption: return "RSA"
        case OID.rsaPSS: return "RSA-PSS"
        case OID.dsa: return "DSA"
        case OID.ed25519: return "Ed25519"
        case OID.ed448: return "Ed448"
        case OID.x25519: return "X25519"
        case OID.x448: return "X448"
        case OID.ecPublicKey: return "EC"
        default: return "unknown algorithm \(oid)"
        }
    }

    static func curveName(_ oid: ASN1ObjectIdentifier) -> String {
        let names: [ASN1ObjectIdentifier: String] = [
            OID.p256: "P-256 (prime256v1)",
            [1, 3, 132, 0, 34]: "P-384 (secp384r1)",
            [1, 3, 132, 0, 35]: "P-521 (secp521r1)",
            [1, 3, 132, 0, 10]: "secp256k1",
            [1, 3, 132, 0, 33]: "P-224 (secp224r1)",
            [1, 2, 840, 10045, 3, 1, 1]: "P-192 (prime192v1)",
            [1, 3, 36, 3, 3, 2, 8, 1, 1, 7]: "brainpoolP256r1",
            [1, 3, 36, 3, 3, 2, 8, 1, 1, 11]: "brainpoolP384r1",
            [1, 2, 156, 10197, 1, 301]: "SM2",
        ]
        return names[oid] ?? "curve \(oid)"
    }

    static let needed =
        "Starling needs an ECDSA P-256 key (e.g. `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"

    /// Decodes a PKCS#8 `PrivateKeyInfo` (`-----BEGIN PRIVATE KEY-----`).
    static func pkcs8(_ der: [UInt8], source: String) throws(IdentityError) -> P256.Signing.PrivateKey {
        let fields: [ASN1Node]
        let algorithm: [ASN1Node]
        do {
            fields = try children(of: DER.parse(der))
            guard fields.count >= 3 else { throw ASN1Error.invalidASN1Object(reason: "PrivateKeyInfo too short") }
            algorithm = try children(of: fields[1])
        } catch {
            throw .malformedPEM("\(source): the PKCS#8 private key is not valid DER", cause: error)
        }
        guard let oidNode = algorithm.first, let oid = try? ASN1ObjectIdentifier(derEncoded: oidNode) else {
            throw .malformedPEM("\(source): the PKCS#8 private key has no algorithm identifier")
        }
        guard oid == OID.ecPublicKey else {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds an \(algorithmName(oid)) private key; \(needed)"
            )
        }
        let curve = algorithm.count > 1 ? algorithm[1] : nil
        try checkCurve(curve, source: source)
        guard let inner = try? ASN1OctetString(derEncoded: fields[2]) else {
            throw .malformedPEM("\(source): the PKCS#8 private key has no key octet string")
        }
        return try sec1(Array(inner.bytes), source: source, curveKnown: true)
    }

    /// Decodes a SEC1 `ECPrivateKey` (`-----BEGIN EC PRIVATE KEY-----`, or inside PKCS#8).
    static func sec1(_ der: [UInt8], source: String, curveKnown: Bool = false) throws(IdentityError)
        -> P256.Signing.PrivateKey
    {
        let fields: [ASN1Node]
        let scalar: ASN1OctetString
        do {
            fields = try children(of: DER.parse(der))
            guard fields.count >= 2 else { throw ASN1Error.invalidASN1Object(reason: "ECPrivateKey too short") }
            scalar = try ASN1OctetString(derEncoded: fields[1])
        } catch {
            throw .malformedPEM("\(source): the EC private key is not valid DER", cause: error)
        }
        var parametersNode: ASN1Node?
        var publicKeyBits: ASN1BitString?
        for field in fields.dropFirst(2) {
            if field.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                parametersNode = try? children(of: field).first
            } else if field.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific) {
                if let bits = try? children(of: field).first {
                    publicKeyBits = try? ASN1BitString(derEncoded: bits)
                }
            }
        }
        if parametersNode != nil || !curveKnown {
            try checkCurve(parametersNode, source: source)
        }
        var raw = Array(scalar.bytes)
        if raw.count < 32 {
            raw = [UInt8](repeating: 0, count: 32 - raw.count) + raw
        }
        guard raw.count == 32 else {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds a \(raw.count * 8)-bit EC private key; \(needed)"
            )
        }
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(rawRepresentation: raw)
        } catch {
            throw .malformedPEM("\(source): the EC private key is not a valid P-256 scalar", cause: error)
        }
        if let publicKeyBits, Array(publicKeyBits.bytes) != Array(key.publicKey.x963Representation),
            Array(publicKeyBits.bytes) != Array(key.publicKey.compressedRepresentation)
        {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source): the EC private key's embedded public key does not match its private scalar "
                    + "(not a P-256 key?); \(needed)"
            )
        }
        return key
    }

    /// Accepts the named curve P-256 only; `node` is the algorithm parameters (an OID for a named
    /// curve, a SEQUENCE for explicit parameters) or nil when absent.
    private static func checkCurve(_ node: ASN1Node?, source: String) throws(IdentityError) {
        guard let node else {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source): the EC private key does not name its curve; \(needed)"
            )
        }
        guard node.identifier == .objectIdentifier, let curve = try? ASN1ObjectIdentifier(derEncoded: node) else {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source): the EC private key uses explicit curve parameters instead of a named curve; "
                    + "\(needed) (openssl: `-param_enc named_curve`)"
            )
        }
        guard curve == OID.p256 else {
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds an ECDSA \(curveName(curve)) private key; \(needed)"
            )
        }
    }

    private static func children(of node: ASN1Node) throws -> [ASN1Node] {
        guard case .constructed(let collection) = node.content else {
            throw ASN1Error.invalidASN1Object(reason: "expected a constructed node")
        }
        return Array(collection)
    }
}
