import Crypto
import Foundation
import StarlingCore
import SwiftASN1
import Testing
import X509

@testable import StarlingIdentity

@Suite("Issuer (workload certificates)")
struct IssuerTests {
    let now = Date()

    @Test("a CSR for the granted identity yields a leaf with both SANs, followed by the issuer")
    func certifies() throws {
        let pki = try PKIFixture(now: now)
        let key = WorkloadKey()
        let chain = try pki.makeIssuer().certify(csrDER: key.csr(for: web).der, granted: web, now: now)
        #expect(chain.count == 2)
        #expect(chain[1] == pki.issuer)
        let leaf = chain[0]
        #expect(key.matches(leaf))
        #expect(leaf.isSigned(by: pki.issuer))
        #expect(leaf.subject.commonName == web.dnsName)
        #expect(leaf.issuer == pki.issuer.subject)
        #expect(leaf.alternativeNames.dns == [web.dnsName])
        #expect(leaf.alternativeNames.uri == [web.spiffeURI])
        #expect(try leaf.extensions.keyUsage?.digitalSignature == true)
        #expect(try leaf.extensions.keyUsage?.keyCertSign == false)
        let eku = try #require(try leaf.extensions.extendedKeyUsage)
        #expect(eku.contains(.serverAuth) && eku.contains(.clientAuth))
        #expect(!leaf.isCertificateAuthority)
        #expect(leaf.notValidBefore == Date(timeIntervalSince1970: (now.timeIntervalSince1970 - 60).rounded(.down)))
        #expect(abs(leaf.notValidAfter.timeIntervalSince(now.addingTimeInterval(86400))) < 1)
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == pki.issuer.keyIdentifier)
    }

    @Test("the PEM form of the CSR is accepted too")
    func pemCSR() throws {
        let pki = try PKIFixture(now: now)
        let chain = try pki.makeIssuer().certify(csrPEM: WorkloadKey().csr(for: web).pem, granted: web, now: now)
        #expect(chain[0].meshIdentities.first == web)
    }

    @Test("the leaf never outlives the issuer")
    func cappedLifetime() throws {
        let pki = try PKIFixture(now: now)
        let late = pki.issuer.notValidAfter.addingTimeInterval(-3600)
        let issuer = try Issuer(
            certificate: pki.issuer,
            key: pki.issuerKey,
            trust: pki.trust,
            trustDomain: "cluster.local",
            now: late
        )
        let chain = try issuer.certify(csrDER: WorkloadKey().csr(for: web).der, granted: web, now: late)
        #expect(chain[0].notValidAfter == pki.issuer.notValidAfter)
    }

    @Test("a CSR whose signature bytes were flipped is refused")
    func forgedSignature() throws {
        let pki = try PKIFixture(now: now)
        var der = try WorkloadKey().csr(for: web).der
        der[der.count - 1] ^= 0xFF
        der[der.count - 2] ^= 0x55
        let error = expectIdentityError(.csrSignatureInvalid) {
            try pki.makeIssuer().certify(csrDER: der, granted: web, now: now)
        }
        #expect(error?.message.contains(web.dnsName) == true)
    }

    @Test("a CSR whose public key was swapped for another is refused")
    func swappedKey() throws {
        let pki = try PKIFixture(now: now)
        let good = try CertificateSigningRequest(derEncoded: WorkloadKey().csr(for: web).der)
        let swapped = try CertificateSigningRequest(
            version: good.version,
            subject: good.subject,
            publicKey: .init(P256.Signing.PrivateKey().publicKey),
            attributes: good.attributes,
            signatureAlgorithm: good.signatureAlgorithm,
            signature: good.signature
        )
        expectIdentityError(.csrSignatureInvalid) { try pki.makeIssuer().certify(csr: swapped, granted: web, now: now) }
    }

    @Test("a CSR for another identity is refused, naming both identities")
    func otherIdentity() throws {
        let pki = try PKIFixture(now: now)
        let der = try WorkloadKey().csr(for: api).der
        let error = expectIdentityError(.identityNotGranted) {
            try pki.makeIssuer().certify(csrDER: der, granted: web, now: now)
        }
        #expect(error?.message.contains(api.description) == true)
        #expect(error?.message.contains(web.description) == true)
    }

    @Test("a CSR asking for an extra SAN is refused")
    func extraSAN() throws {
        let pki = try PKIFixture(now: now)
        let key = P256.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.dnsName(web.dnsName), .dnsName("bank.example.com")])
        }
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName { CommonName(web.dnsName) },
            privateKey: .init(key),
            attributes: .init([try .init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        let error = expectIdentityError(.identityNotGranted) {
            try pki.makeIssuer().certify(csr: csr, granted: web, now: now)
        }
        #expect(error?.message.contains("bank.example.com") == true)
    }

    @Test("a CSR with a foreign common name is refused; one naming nothing is refused too")
    func commonNames() throws {
        let pki = try PKIFixture(now: now)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let foreign = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName { CommonName("root") },
            privateKey: key,
            attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        expectIdentityError(.identityNotGranted) { try pki.makeIssuer().certify(csr: foreign, granted: web, now: now) }
        let empty = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName(),
            privateKey: key,
            attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        expectIdentityError(.identityNotGranted) { try pki.makeIssuer().certify(csr: empty, granted: web, now: now) }
        let cnOnly = try CertificateSigningRequest(
            version: .v1,
            subject: DistinguishedName { CommonName(web.dnsName) },
            privateKey: key,
            attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA256
        )
        #expect(try pki.makeIssuer().certify(csr: cnOnly, granted: web, now: now)[0].meshIdentities.first == web)
    }

    @Test("a granted identity outside the issuer's trust domain is refused")
    func foreignTrustDomain() throws {
        let pki = try PKIFixture(now: now)
        let foreign = MeshIdentity(namespace: "test", serviceAccount: "web", trustDomain: "other.local")
        expectIdentityError(.identityNotGranted) {
            try pki.makeIssuer().certify(csrDER: WorkloadKey().csr(for: foreign).der, granted: foreign, now: now)
        }
    }

    @Test("garbage instead of a CSR is refused as malformed")
    func garbage() throws {
        let pki = try PKIFixture(now: now)
        expectIdentityError(.malformedPEM) {
            try pki.makeIssuer().certify(csrDER: [0x30, 0x03, 0x02, 0x01, 0x00], granted: web, now: now)
        }
    }

    @Test("making an issuer validates it once: a bad issuer cannot be made")
    func validatedAtInit() throws {
        let pki = try PKIFixture(now: now)
        let other = try PKIFixture(now: now, rootSubject: "other")
        expectIdentityError(.chainInvalid) {
            try Issuer(
                certificate: other.issuer,
                key: other.issuerKey,
                trust: pki.trust,
                trustDomain: "cluster.local",
                now: now
            )
        }
        expectIdentityError(.keyMismatch) {
            try Issuer(
                certificate: pki.issuer,
                key: other.issuerKey,
                trust: pki.trust,
                trustDomain: "cluster.local",
                now: now
            )
        }
    }

    @Test("certify is safe to call concurrently")
    func concurrent() async throws {
        let pki = try PKIFixture(now: now)
        let issuer = try pki.makeIssuer()
        let now = self.now
        let count = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<16 {
                group.addTask {
                    let identity = MeshIdentity(namespace: "ns\(i)", serviceAccount: "sa")
                    let chain = try issuer.certify(
                        csrDER: WorkloadKey().csr(for: identity).der,
                        granted: identity,
                        now: now
                    )
                    return chain[0].meshIdentities.first == identity ? 1 : 0
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(count == 16)
    }
}
