import Crypto
import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

@Suite("PEM files")
struct PEMFileTests {
    @Test("a certificate written as PEM reads back identical")
    func certificateRoundTrip() throws {
        let pki = try PKIFixture()
        let pem = PEMFile.pem(pki.root)
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(pem.hasSuffix("-----END CERTIFICATE-----\n"))
        #expect(pem.split(separator: "\n").allSatisfy { $0.count <= 64 })
        #expect(try PEMFile.certificates(pem: pem, source: "root.crt") == [pki.root])
    }

    @Test("a bundle yields every certificate in order, with CRLF line endings too")
    func bundle() throws {
        let pki = try PKIFixture()
        let pem = PEMFile.pem([pki.issuer, pki.root]).replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try PEMFile.certificates(pem: pem, source: "bundle.crt") == [pki.issuer, pki.root])
    }

    @Test("a private key written as PKCS#8 reads back as the same key")
    func keyRoundTrip() throws {
        let key = P256.Signing.PrivateKey()
        let pem = PEMFile.pem(key)
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let read = try PEMFile.privateKey(pem: pem, source: "k.key")
        #expect(read.rawRepresentation == key.rawRepresentation)
    }

    @Test("an empty certificate file is refused, naming the file")
    func emptyFile() {
        let error = expectIdentityError(.malformedPEM) { try PEMFile.certificates(pem: "  \n", source: "root.crt") }
        #expect(error?.message == "root.crt is empty")
    }

    @Test("garbage is refused as not PEM")
    func garbage() {
        let error = expectIdentityError(.malformedPEM) {
            try PEMFile.certificates(pem: "hello world", source: "root.crt")
        }
        #expect(error?.message.contains("root.crt is not PEM") == true)
    }

    @Test("a block with broken base64 or DER is refused")
    func brokenBlock() {
        expectIdentityError(.malformedPEM) {
            try PEMFile.certificates(
                pem: "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                source: "a.crt"
            )
        }
        let error = expectIdentityError(.malformedPEM) {
            try PEMFile.certificates(
                pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                source: "a.crt"
            )
        }
        #expect(error?.message.contains("not a valid X.509 certificate") == true)
    }

    @Test("a truncated file is refused, saying the END line is missing")
    func truncated() throws {
        let pki = try PKIFixture()
        let pem = String(PEMFile.pem(pki.root).dropLast(30))
        let error = expectIdentityError(.malformedPEM) { try PEMFile.certificates(pem: pem, source: "root.crt") }
        #expect(error?.message.contains("no -----END CERTIFICATE----- line") == true)
    }

    @Test("a private key given as a certificate is refused, saying what it holds")
    func keyInsteadOfCertificate() {
        let pem = PEMFile.pem(P256.Signing.PrivateKey())
        let error = expectIdentityError(.malformedPEM) { try PEMFile.certificates(pem: pem, source: "root.key") }
        #expect(error?.message == "root.key holds a private key, not a certificate")
    }

    @Test("a certificate given as a private key is refused, saying what it holds")
    func certificateInsteadOfKey() throws {
        let pki = try PKIFixture()
        let error = expectIdentityError(.malformedPEM) {
            try PEMFile.privateKey(pem: PEMFile.pem(pki.root), source: "root.crt")
        }
        #expect(error?.message == "root.crt holds a certificate, not a private key")
    }

    @Test("a file with a certificate and its key yields both")
    func certificateAndKeyTogether() throws {
        let pki = try PKIFixture()
        let pem = PEMFile.pem(pki.issuer) + PEMFile.pem(pki.issuerKey)
        #expect(try PEMFile.certificates(pem: pem, source: "both.pem") == [pki.issuer])
        #expect(
            try PEMFile.privateKey(pem: pem, source: "both.pem").rawRepresentation == pki.issuerKey.rawRepresentation
        )
    }

    @Test("an encrypted PKCS#8 key is refused, asking for an unencrypted one")
    func encryptedPKCS8() {
        let pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        let error = expectIdentityError(.encryptedKey) { try PEMFile.privateKey(pem: pem, source: "issuer.key") }
        #expect(error?.message.contains("issuer.key holds an encrypted") == true)
        #expect(error?.message.contains("unencrypted") == true)
    }

    @Test("a legacy Proc-Type encrypted EC key is refused as encrypted")
    func legacyEncrypted() {
        let pem = """
            -----BEGIN EC PRIVATE KEY-----
            Proc-Type: 4,ENCRYPTED
            DEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF

            AAAA
            -----END EC PRIVATE KEY-----

            """
        expectIdentityError(.encryptedKey) { try PEMFile.privateKey(pem: pem, source: "old.key") }
    }

    @Test("a SEC1 key naming another curve is refused, naming the curve")
    func otherCurveSEC1() {
        // ECPrivateKey { 1, 32 bytes, [0] secp256k1 }
        let der: [UInt8] =
            [0x30, 0x2E, 0x02, 0x01, 0x01, 0x04, 0x20] + [UInt8](repeating: 7, count: 32)
            + [0xA0, 0x07, 0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A]
        let pem = PEMBlock.encode(label: "EC PRIVATE KEY", der: der)
        let error = expectIdentityError(.unsupportedKey) { try PEMFile.privateKey(pem: pem, source: "k1.key") }
        #expect(error?.message.contains("secp256k1") == true)
    }

    @Test("a PKCS#1 RSA key is refused as RSA")
    func rsaLabel() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
        let error = expectIdentityError(.unsupportedKey) { try PEMFile.privateKey(pem: pem, source: "rsa.key") }
        #expect(error?.message.contains("rsa.key holds an RSA private key") == true)
    }

    @Test("two private keys in one file are refused as ambiguous")
    func twoKeys() {
        let pem = PEMFile.pem(P256.Signing.PrivateKey()) + PEMFile.pem(P256.Signing.PrivateKey())
        expectIdentityError(.invalidArgument) { try PEMFile.privateKey(pem: pem, source: "two.key") }
    }

    @Test("a CSR in PEM parses and anything else is refused")
    func csrPEM() throws {
        let (_, pem) = try WorkloadKey().csr(for: web)
        _ = try PEMFile.certificateSigningRequest(pem: pem, source: "web.csr")
        let error = expectIdentityError(.malformedPEM) {
            try PEMFile.certificateSigningRequest(pem: PEMFile.pem(P256.Signing.PrivateKey()), source: "x.pem")
        }
        #expect(error?.message == "x.pem holds a private key, not a certificate signing request")
    }
}
