import Crypto
import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

/// Interoperability with the real `openssl` CLI: keys and certificates it makes are read, and
/// certificates Starling makes verify with it.
@Suite("openssl interop", .enabled(if: OpenSSL.isAvailable, "the openssl CLI is not installed; interop tests skipped"))
struct OpenSSLInteropTests {
    /// The public key openssl derives from a key file, as SPKI PEM.
    func opensslPublicKey(_ file: String, in dir: TemporaryDirectory) throws -> String {
        try OpenSSL.succeed(["pkey", "-in", file, "-pubout"], in: dir.url).stdout
    }

    @Test("a SEC1 key from `openssl ecparam -genkey` (with its EC PARAMETERS block) is read")
    func sec1WithParameters() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(["ecparam", "-name", "prime256v1", "-genkey", "-out", "k.pem"], in: dir.url)
        let text = try dir.read("k.pem")
        #expect(text.contains("BEGIN EC PARAMETERS") && text.contains("BEGIN EC PRIVATE KEY"))
        let key = try PEMFile.privateKey(pem: text, source: "k.pem")
        #expect(
            key.publicKey.pemRepresentation.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try opensslPublicKey("k.pem", in: dir)).trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    @Test("a SEC1 key from `openssl ecparam -genkey -noout` is read")
    func sec1NoOut() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem"], in: dir.url)
        let key = try PEMFile.privateKey(pem: dir.read("k.pem"), source: "k.pem")
        #expect(
            key.publicKey.pemRepresentation.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try opensslPublicKey("k.pem", in: dir)).trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    @Test("a PKCS#8 key from `openssl genpkey -algorithm EC` is read")
    func pkcs8() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.pem"],
            in: dir.url
        )
        #expect(try dir.read("k.pem").hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let key = try PEMFile.privateKey(pem: dir.read("k.pem"), source: "k.pem")
        #expect(
            key.publicKey.pemRepresentation.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try opensslPublicKey("k.pem", in: dir)).trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    @Test("a key Starling writes is read by openssl as the same P-256 key")
    func ourKeyReadByOpenSSL() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let key = P256.Signing.PrivateKey()
        try IdentityFiles.writeKey(pem: PEMFile.pem(key), to: dir.path("k.pem"))
        try OpenSSL.succeed(["ec", "-in", "k.pem", "-check", "-noout"], in: dir.url)
        let text = try OpenSSL.succeed(["pkey", "-in", "k.pem", "-text", "-noout"], in: dir.url).stdout
        #expect(text.contains("prime256v1") || text.contains("P-256"))
        #expect(
            key.publicKey.pemRepresentation.trimmingCharacters(in: .whitespacesAndNewlines)
                == (try opensslPublicKey("k.pem", in: dir)).trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    @Test(
        "an RSA key is refused, saying it is RSA",
        arguments: [
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"],
            ["genrsa", "-traditional", "-out", "rsa.pem", "2048"],
        ]
    )
    func rsa(arguments: [String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(arguments, in: dir.url)
        let error = expectIdentityError(.unsupportedKey) {
            try PEMFile.privateKey(pem: try dir.read("rsa.pem"), source: "rsa.pem")
        }
        #expect(error?.message.contains("rsa.pem holds an RSA private key") == true)
    }

    @Test(
        "EC keys on other curves are refused, naming the curve",
        arguments: [("secp384r1", "P-384"), ("secp256k1", "secp256k1"), ("secp521r1", "P-521")]
    )
    func otherCurves(curve: String, name: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(["ecparam", "-name", curve, "-genkey", "-noout", "-out", "sec1.pem"], in: dir.url)
        try OpenSSL.succeed(["pkcs8", "-topk8", "-nocrypt", "-in", "sec1.pem", "-out", "pkcs8.pem"], in: dir.url)
        for file in ["sec1.pem", "pkcs8.pem"] {
            let error = expectIdentityError(.unsupportedKey) {
                try PEMFile.privateKey(pem: try dir.read(file), source: file)
            }
            #expect(error?.message.contains(name) == true, "\(file): \(error?.message ?? "")")
        }
    }

    @Test("an Ed25519 key is refused, naming it")
    func ed25519() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"], in: dir.url)
        let error = expectIdentityError(.unsupportedKey) {
            try PEMFile.privateKey(pem: try dir.read("ed.pem"), source: "ed.pem")
        }
        #expect(error?.message.contains("Ed25519") == true)
    }

    @Test(
        "a password-protected key is refused as encrypted",
        arguments: [
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:secret"]
        ]
    )
    func encrypted(arguments: [String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(arguments + ["-out", "enc.pem"], in: dir.url)
        #expect(try dir.read("enc.pem").contains("ENCRYPTED PRIVATE KEY"))
        let error = expectIdentityError(.encryptedKey) {
            try PEMFile.privateKey(pem: try dir.read("enc.pem"), source: "enc.pem")
        }
        #expect(error?.message.contains("pass an unencrypted key") == true)
    }

    @Test("root, issuer and workload certificates verify with `openssl verify`")
    func chainVerifies() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pki = try PKIFixture()
        let chain = try pki.makeIssuer().certify(csrDER: WorkloadKey().csr(for: web).der, granted: web)
        try IdentityFiles.writeCertificate(pem: PEMFile.pem(pki.root), to: dir.path("root.pem"))
        try IdentityFiles.writeCertificate(pem: PEMFile.pem(pki.issuer), to: dir.path("issuer.pem"))
        try IdentityFiles.writeCertificate(pem: PEMFile.pem(chain[0]), to: dir.path("leaf.pem"))
        try OpenSSL.succeed(["verify", "-x509_strict", "-CAfile", "root.pem", "root.pem"], in: dir.url)
        try OpenSSL.succeed(["verify", "-x509_strict", "-CAfile", "root.pem", "issuer.pem"], in: dir.url)
        for purpose in ["sslserver", "sslclient"] {
            let out = try OpenSSL.succeed(
                [
                    "verify", "-x509_strict", "-purpose", purpose, "-CAfile", "root.pem", "-untrusted", "issuer.pem",
                    "leaf.pem",
                ],
                in: dir.url
            )
            #expect(out.stdout.contains("leaf.pem: OK"))
        }
        // Without the issuer the leaf does not verify: the chain really is root → issuer → leaf.
        #expect(try OpenSSL.run(["verify", "-CAfile", "root.pem", "leaf.pem"], in: dir.url).status != 0)
        let text = try OpenSSL.succeed(["x509", "-in", "issuer.pem", "-noout", "-text"], in: dir.url).stdout
        #expect(text.contains("CA:TRUE, pathlen:0"))
        #expect(text.contains("Certificate Sign, CRL Sign"))
        #expect(text.contains("ecdsa-with-SHA256"))
        let leafText = try OpenSSL.succeed(["x509", "-in", "leaf.pem", "-noout", "-text"], in: dir.url).stdout
        #expect(leafText.contains("DNS:\(web.dnsName), URI:\(web.spiffeURI)"))
        #expect(leafText.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
    }

    @Test("the fingerprint matches `openssl x509 -fingerprint -sha256`")
    func fingerprint() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pki = try PKIFixture()
        try dir.write(PEMFile.pem(pki.root), to: "root.pem")
        let out = try OpenSSL.succeed(["x509", "-in", "root.pem", "-noout", "-fingerprint", "-sha256"], in: dir.url)
            .stdout
        #expect(out.contains(pki.root.sha256Fingerprint))
        let serial = try OpenSSL.succeed(["x509", "-in", "root.pem", "-noout", "-serial"], in: dir.url).stdout
        #expect(serial.lowercased().contains(pki.root.serialNumber.hex))
    }

    @Test("a root and issuer made by openssl are read and usable as anchor and issuer")
    func opensslMadePKI() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try OpenSSL.succeed(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key"], in: dir.url)
        try OpenSSL.succeed(
            [
                "req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=openssl root", "-days", "30", "-out",
                "root.crt",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            in: dir.url
        )
        try OpenSSL.succeed(
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "issuer.key"],
            in: dir.url
        )
        try OpenSSL.succeed(
            ["req", "-new", "-key", "issuer.key", "-subj", "/CN=openssl issuer", "-out", "issuer.csr"],
            in: dir.url
        )
        try dir.write(
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
            to: "ext.cnf"
        )
        try OpenSSL.succeed(
            [
                "x509", "-req", "-in", "issuer.csr", "-CA", "root.crt", "-CAkey", "root.key", "-CAcreateserial",
                "-days", "10",
                "-extfile", "ext.cnf", "-out", "issuer.crt",
            ],
            in: dir.url
        )
        let trust = try TrustBundle(pem: dir.read("root.crt"), source: "root.crt")
        let issuerCert = try PEMFile.certificate(pem: dir.read("issuer.crt"), source: "issuer.crt")
        let issuerKey = try PEMFile.privateKey(pem: dir.read("issuer.key"), source: "issuer.key")
        let status = try trust.validateIssuer(certificate: issuerCert, chain: [], key: issuerKey, now: Date())
        #expect(status.expiresWithin(days: 11))
        let issuer = try Issuer(certificate: issuerCert, key: issuerKey, trust: trust, trustDomain: "cluster.local")
        let chain = try issuer.certify(csrDER: WorkloadKey().csr(for: web).der, granted: web)
        #expect(chain[0].isSigned(by: issuerCert))
        // Our CA profile also signs from an openssl-made root.
        let rootKey = try PEMFile.privateKey(pem: dir.read("root.key"), source: "root.key")
        let (ours, _) = try CertificateFactory.create(
            CertificateRequest(subject: "ours", profile: .intermediateCA, issuer: (trust.anchors[0], rootKey))
        )
        try dir.write(PEMFile.pem(ours), to: "ours.crt")
        try OpenSSL.succeed(["verify", "-x509_strict", "-CAfile", "root.crt", "ours.crt"], in: dir.url)
    }

    @Test("a CSR made by openssl for the granted identity is certified; one for another identity is refused")
    func opensslCSR() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pki = try PKIFixture()
        try OpenSSL.succeed(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "w.key"], in: dir.url)
        try OpenSSL.succeed(
            [
                "req", "-new", "-key", "w.key", "-subj", "/CN=\(web.dnsName)", "-addext",
                "subjectAltName=DNS:\(web.dnsName),URI:\(web.spiffeURI)",
                "-out", "web.csr",
            ],
            in: dir.url
        )
        try OpenSSL.succeed(
            [
                "req", "-new", "-key", "w.key", "-subj", "/CN=\(web.dnsName)", "-addext",
                "subjectAltName=DNS:\(api.dnsName)", "-out", "api.csr",
            ],
            in: dir.url
        )
        let issuer = try pki.makeIssuer()
        let chain = try issuer.certify(csrPEM: dir.read("web.csr"), granted: web)
        #expect(chain[0].meshIdentities == [web, web])
        let error = expectIdentityError(.identityNotGranted) {
            try issuer.certify(csrPEM: try dir.read("api.csr"), granted: web)
        }
        #expect(error?.message.contains(api.dnsName) == true)
    }

    @Test("a CSR Starling makes passes `openssl req -verify` and requests both SANs")
    func ourCSR() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write(try WorkloadKey().csr(for: web).pem, to: "web.csr")
        let out = try OpenSSL.succeed(["req", "-in", "web.csr", "-verify", "-noout", "-text"], in: dir.url)
        #expect(
            out.combined.contains("verify OK") || out.combined.contains("Certificate request self-signature verify OK")
        )
        #expect(out.stdout.contains("DNS:\(web.dnsName), URI:\(web.spiffeURI)"))
    }

    @Test("the serving certificate verifies as its own trust anchor for TLS server use")
    func servingCertificate() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (cert, key) = try ServingCertificate.selfSigned(
            commonName: "starling-controller",
            ipAddresses: ["127.1.0.1", "::1"],
            dnsNames: ["localhost"],
            validity: 86400,
            now: Date()
        )
        try IdentityFiles.writeCertificate(pem: PEMFile.pem(cert), to: dir.path("api.crt"))
        try IdentityFiles.writeKey(pem: PEMFile.pem(key), to: dir.path("api.key"))
        try OpenSSL.succeed(
            ["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "api.crt", "api.crt"],
            in: dir.url
        )
        try OpenSSL.succeed(
            ["verify", "-purpose", "sslserver", "-verify_ip", "127.1.0.1", "-CAfile", "api.crt", "api.crt"],
            in: dir.url
        )
        #expect(
            try OpenSSL.run(["verify", "-verify_ip", "127.1.0.2", "-CAfile", "api.crt", "api.crt"], in: dir.url).status
                != 0
        )
        try OpenSSL.succeed(["x509", "-in", "api.crt", "-noout", "-checkend", "3600"], in: dir.url)
    }

    @Test("a TLS handshake with the serving certificate pinned as the only root succeeds")
    func servingCertificateHandshake() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (cert, key) = try ServingCertificate.selfSigned(
            commonName: "starling-controller",
            ipAddresses: ["127.0.0.1"],
            dnsNames: [],
            validity: 3600,
            now: Date()
        )
        try dir.write(PEMFile.pem(cert), to: "api.crt")
        try IdentityFiles.writeKey(pem: PEMFile.pem(key), to: dir.path("api.key"))
        let port = Int.random(in: 20000...40000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: OpenSSL.path ?? "/usr/bin/openssl")
        server.arguments = [
            "s_server", "-accept", "127.0.0.1:\(port)", "-cert", "api.crt", "-key", "api.key", "-www", "-naccept", "1",
        ]
        server.currentDirectoryURL = dir.url
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        server.standardInput = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        var result: OpenSSL.Output?
        for _ in 0..<50 where server.isRunning {
            let attempt = try OpenSSL.run(
                [
                    "s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", "api.crt", "-verify_return_error",
                    "-verify_ip", "127.0.0.1",
                    "-brief",
                ],
                in: dir.url
            )
            if attempt.combined.contains("Connection refused") || attempt.combined.contains("connect:errno") {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            result = attempt
            break
        }
        let output = try #require(result, "openssl s_server did not start on port \(port)")
        #expect(output.combined.contains("Verification: OK"), "\(output.combined)")
    }
}
