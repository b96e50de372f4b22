public import Crypto
import SwiftASN1
public import X509

/// Reading and writing the PEM files Starling deals with: certificates (one or a bundle) and
/// ECDSA P-256 private keys, whether made by Starling, `step` or `openssl`.
public enum PEMFile {
    /// Parses every certificate in `pem`.
    ///
    /// Non-certificate blocks are ignored when at least one certificate is present (a file holding a
    /// certificate and its key is fine); a file with no certificate is refused, saying what it holds.
    /// - Parameter source: where the text came from (a path or a flag), used in error messages.
    public static func certificates(pem: String, source: String) throws(IdentityError) -> [Certificate] {
        let blocks = try PEMBlock.parseAll(pem, source: source)
        var certificates: [Certificate] = []
        for (index, block) in blocks.enumerated() where block.label == "CERTIFICATE" {
            do {
                certificates.append(try Certificate(derEncoded: block.der))
            } catch {
                throw .malformedPEM(
                    "\(source): PEM block \(index + 1) (CERTIFICATE) is not a valid X.509 certificate",
                    cause: error
                )
            }
        }
        guard certificates.isEmpty else { return certificates }
        let first = blocks[0].label
        throw .malformedPEM("\(source) holds \(PEMBlock.describe(label: first)), not a certificate")
    }

    /// Parses exactly one certificate; a bundle of several is refused.
    public static func certificate(pem: String, source: String) throws(IdentityError) -> Certificate {
        let all = try certificates(pem: pem, source: source)
        guard all.count == 1 else {
            throw .invalidArgument("\(source) holds \(all.count) certificates; expected exactly one")
        }
        return all[0]
    }

    /// Parses the ECDSA P-256 private key in `pem`.
    ///
    /// Accepts PKCS#8 (`PRIVATE KEY`, openssl genpkey / step) and SEC1 (`EC PRIVATE KEY`, openssl
    /// ecparam -genkey; an `EC PARAMETERS` block before it is skipped). Refuses encrypted keys, other
    /// key types and curves (naming them), and certificates given instead of keys.
    public static func privateKey(pem: String, source: String) throws(IdentityError) -> P256.Signing.PrivateKey {
        let blocks = try PEMBlock.parseAll(pem, source: source)
        let keys = blocks.filter { PEMBlock.isPrivateKeyLabel($0.label) }
        guard let block = keys.first else {
            let what = blocks.first(where: { $0.label != "EC PARAMETERS" }) ?? blocks[0]
            throw .malformedPEM("\(source) holds \(PEMBlock.describe(label: what.label)), not a private key")
        }
        guard keys.count == 1 else {
            throw .invalidArgument("\(source) holds \(keys.count) private keys; expected exactly one")
        }
        if block.label == "ENCRYPTED PRIVATE KEY" || block.isLegacyEncrypted {
            throw IdentityError(
                code: .encryptedKey,
                message: "\(source) holds an encrypted (password-protected) private key; pass an unencrypted key "
                    + "(make one with `--no-password --insecure`, or decrypt it with "
                    + "`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.plain`)"
            )
        }
        switch block.label {
        case "PRIVATE KEY":
            return try PrivateKeyDecoder.pkcs8(block.der, source: source)
        case "EC PRIVATE KEY":
            return try PrivateKeyDecoder.sec1(block.der, source: source)
        case "RSA PRIVATE KEY":
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds an RSA private key; \(PrivateKeyDecoder.needed)"
            )
        case "DSA PRIVATE KEY":
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds a DSA private key; \(PrivateKeyDecoder.needed)"
            )
        case "OPENSSH PRIVATE KEY":
            throw IdentityError(
                code: .unsupportedKey,
                message:
                    "\(source) holds an OpenSSH-format private key; \(PrivateKeyDecoder.needed) in PEM (PKCS#8 or SEC1)"
            )
        default:
            throw IdentityError(
                code: .unsupportedKey,
                message: "\(source) holds a '\(block.label)' block; \(PrivateKeyDecoder.needed)"
            )
        }
    }

    /// Parses a PKCS#10 certificate signing request (`CERTIFICATE REQUEST`).
    public static func certificateSigningRequest(pem: String, source: String) throws(IdentityError)
        -> CertificateSigningRequest
    {
        let blocks = try PEMBlock.parseAll(pem, source: source)
        guard
            let block = blocks.first(where: {
                $0.label == "CERTIFICATE REQUEST" || $0.label == "NEW CERTIFICATE REQUEST"
            })
        else {
            throw .malformedPEM(
                "\(source) holds \(PEMBlock.describe(label: blocks[0].label)), not a certificate signing request"
            )
        }
        do {
            return try CertificateSigningRequest(derEncoded: block.der)
        } catch {
            throw .malformedPEM("\(source): the certificate signing request is not valid DER", cause: error)
        }
    }

    /// The certificate as one `CERTIFICATE` PEM block.
    public static func pem(_ cert: Certificate) -> String {
        PEMBlock.encode(label: "CERTIFICATE", der: cert.derBytes)
    }

    /// Several certificates (a chain or a bundle) as consecutive PEM blocks.
    public static func pem(_ certs: [Certificate]) -> String {
        certs.map { pem($0) }.joined()
    }

    /// The key as an unencrypted PKCS#8 `PRIVATE KEY` block (what `step` and `openssl genpkey` write).
    public static func pem(_ key: P256.Signing.PrivateKey) -> String {
        PEMBlock.encode(label: "PRIVATE KEY", der: Array(key.derRepresentation))
    }
}
