import Crypto
import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

@Suite("Certificate factory (starling certs create)")
struct CertificateFactoryTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a root is a self-signed 10-year CA with keyCertSign and cRLSign")
    func root() throws {
        let (root, key) = try CertificateFactory.create(
            CertificateRequest(subject: "identity.starling.cluster.local", profile: .rootCA),
            now: now
        )
        #expect(root.subject.description == "CN=identity.starling.cluster.local")
        #expect(root.issuer == root.subject)
        #expect(root.isSigned(by: root))
        #expect(root.isMatched(by: key))
        #expect(root.notValidBefore == now)
        #expect(root.notValidAfter == now.addingTimeInterval(10 * 365 * 86400))
        let constraints = try #require(try root.extensions.basicConstraints)
        #expect(constraints == .isCertificateAuthority(maxPathLength: nil))
        #expect(root.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let usage = try #require(try root.extensions.keyUsage)
        #expect(usage.keyCertSign && usage.cRLSign && !usage.digitalSignature)
        #expect(root.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        #expect(try root.extensions.subjectKeyIdentifier != nil)
        #expect(root.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(CertificateSummary.keyTypeName(root.publicKey) == "ECDSA P-256")
    }

    @Test("an intermediate is CA pathlen 0, signed by the root, with an authority key identifier, 1 year")
    func intermediate() throws {
        let pki = try PKIFixture(now: now)
        #expect(pki.issuer.issuer == pki.root.subject)
        #expect(pki.issuer.isSigned(by: pki.root))
        #expect(try pki.issuer.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        let aki = try #require(try pki.issuer.extensions.authorityKeyIdentifier)
        #expect(aki.keyIdentifier == (try pki.root.extensions.subjectKeyIdentifier)?.keyIdentifier)
        #expect(pki.issuer.notValidAfter == now.addingTimeInterval(365 * 86400))
    }

    @Test("--not-after is honoured")
    func notAfter() throws {
        let pki = try PKIFixture(now: now)
        let notAfter = try CertificateFactory.parseTime("8760h", now: now)
        let (issuer, _) = try CertificateFactory.create(
            CertificateRequest(
                subject: "x",
                profile: .intermediateCA,
                notAfter: notAfter,
                issuer: (pki.root, pki.rootKey)
            ),
            now: now
        )
        #expect(issuer.notValidAfter == now.addingTimeInterval(8760 * 3600))
    }

    @Test("a leaf has digitalSignature, server and client auth, and the subject plus --san values as SANs")
    func leaf() throws {
        let pki = try PKIFixture(now: now)
        let (leaf, _) = try CertificateFactory.create(
            CertificateRequest(
                subject: "web.example.com",
                profile: .leaf,
                sans: ["10.0.0.1", "::1", "spiffe://cluster.local/ns/test/sa/web", "api.example.com"],
                issuer: (pki.issuer, pki.issuerKey)
            ),
            now: now
        )
        let names = leaf.alternativeNames
        #expect(names.dns == ["web.example.com", "api.example.com"])
        #expect(names.ip == ["10.0.0.1", "::1"])
        #expect(names.uri == ["spiffe://cluster.local/ns/test/sa/web"])
        #expect(try leaf.extensions.keyUsage?.digitalSignature == true)
        let eku = try #require(try leaf.extensions.extendedKeyUsage)
        #expect(eku.contains(.serverAuth) && eku.contains(.clientAuth))
        #expect(!leaf.isCertificateAuthority)
        #expect(leaf.notValidAfter == now.addingTimeInterval(86400))
    }

    @Test("serial numbers are random, positive and about 128 bits")
    func serials() throws {
        var seen = Set<String>()
        for _ in 0..<20 {
            let (cert, _) = try CertificateFactory.create(CertificateRequest(subject: "r", profile: .rootCA), now: now)
            let bytes = cert.serialNumber.bytes
            #expect(bytes.count <= 16 && bytes.count >= 14)
            #expect(bytes.first.map { $0 & 0x80 == 0 } == true)
            seen.insert(cert.serialNumber.hex)
        }
        #expect(seen.count == 20)
    }

    @Test("an intermediate without an issuer is refused")
    func intermediateNeedsIssuer() {
        let error = expectIdentityError(.invalidArgument) {
            try CertificateFactory.create(CertificateRequest(subject: "x", profile: .intermediateCA), now: now)
        }
        #expect(error?.message.contains("--ca") == true)
    }

    @Test("a root with an issuer is refused")
    func rootWithIssuer() throws {
        let pki = try PKIFixture(now: now)
        expectIdentityError(.invalidArgument) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .rootCA, issuer: (pki.root, pki.rootKey)),
                now: now
            )
        }
    }

    @Test("an issuer that is not a CA is refused")
    func issuerNotCA() throws {
        let pki = try PKIFixture(now: now)
        let (leaf, leafKey) = try CertificateFactory.create(
            CertificateRequest(subject: "leaf", profile: .leaf, issuer: (pki.issuer, pki.issuerKey)),
            now: now
        )
        expectIdentityError(.notACA) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .intermediateCA, issuer: (leaf, leafKey)),
                now: now
            )
        }
    }

    @Test("an issuer key that does not match the issuer certificate is refused")
    func issuerKeyMismatch() throws {
        let pki = try PKIFixture(now: now)
        let error = expectIdentityError(.keyMismatch) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .intermediateCA, issuer: (pki.root, pki.issuerKey)),
                now: now
            )
        }
        #expect(error?.message.contains("does not belong") == true)
    }

    @Test("an expired issuer is refused")
    func expiredIssuer() throws {
        let pki = try PKIFixture(now: now)
        expectIdentityError(.expired) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .intermediateCA, issuer: (pki.root, pki.rootKey)),
                now: now.addingTimeInterval(11 * 365 * 86400)
            )
        }
    }

    @Test("not-after before not-before is refused")
    func inverted() {
        expectIdentityError(.invalidArgument) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .rootCA, notAfter: now.addingTimeInterval(-60)),
                now: now
            )
        }
    }

    @Test("a SAN that is neither DNS, IP nor URI is refused, naming it")
    func badSAN() {
        let error = expectIdentityError(.invalidArgument) {
            try CertificateFactory.create(
                CertificateRequest(subject: "x", profile: .rootCA, sans: ["not a name!"]),
                now: now
            )
        }
        #expect(error?.message.contains("'not a name!'") == true)
    }

    @Test(
        "durations are relative to now",
        arguments: [
            ("8760h", 8760.0 * 3600), ("90m", 5400), ("30s", 30), ("1h30m", 5400), ("-5m", -300), ("1.5h", 5400),
            ("0", 0), ("+2h", 7200), ("500ms", 0.5),
        ]
    )
    func durations(text: String, seconds: Double) throws {
        #expect(try CertificateFactory.parseTime(text, now: now) == now.addingTimeInterval(seconds))
    }

    @Test("RFC 3339 times are absolute")
    func rfc3339() throws {
        #expect(
            try CertificateFactory.parseTime("2030-01-01T00:00:00Z", now: now)
                == Date(timeIntervalSince1970: 1_893_456_000)
        )
        #expect(
            try CertificateFactory.parseTime("2030-01-01T02:00:00+02:00", now: now)
                == Date(timeIntervalSince1970: 1_893_456_000)
        )
        #expect(
            try CertificateFactory.parseTime("2030-01-01T00:00:00.5Z", now: now)
                == Date(timeIntervalSince1970: 1_893_456_000.5)
        )
    }

    @Test(
        "times that are neither durations nor RFC 3339 are refused",
        arguments: ["", "h", "5", "5x", "1h-5m", "tomorrow", "2030-01-01"]
    )
    func badTimes(text: String) {
        let error = expectIdentityError(.invalidArgument) { try CertificateFactory.parseTime(text, now: now) }
        #expect(error?.message.contains("'\(text)'") == true)
    }

    @Test("profiles are looked up by their command-line names")
    func profiles() {
        #expect(CertificateRequest.Profile(name: "root-ca") == .rootCA)
        #expect(CertificateRequest.Profile(name: "intermediate-ca") == .intermediateCA)
        #expect(CertificateRequest.Profile(name: "leaf") == .leaf)
        #expect(CertificateRequest.Profile(name: "self-signed") == nil)
    }
}
