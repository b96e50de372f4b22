import Crypto
import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

@Suite("Trust bundle: issuer validation")
struct IssuerValidationTests {
    let now = Date()

    @Test("a good issuer validates and reports its expiry")
    func goodIssuer() throws {
        let pki = try PKIFixture(now: now)
        let status = try pki.trust.validateIssuer(certificate: pki.issuer, chain: [], key: pki.issuerKey, now: now)
        #expect(status.notAfter == pki.issuer.notValidAfter)
        #expect(status.path == [pki.issuer, pki.root])
        #expect(!status.expiresWithin(days: 30))
        #expect(status.expiresWithin(days: 366))
    }

    @Test("an issuer from another root is refused, listing the anchors")
    func otherRoot() throws {
        let pki = try PKIFixture(now: now)
        let other = try PKIFixture(now: now, rootSubject: "other-root")
        let error = expectIdentityError(.chainInvalid) {
            try pki.trust.validateIssuer(certificate: other.issuer, chain: [], key: other.issuerKey, now: now)
        }
        #expect(
            error?.message.contains("is not signed by any of the trust anchors ('CN=identity.starling.cluster.local')")
                == true
        )
    }

    @Test("an issuer with the same subject as the anchor but another key is refused")
    func sameNameOtherKey() throws {
        let pki = try PKIFixture(now: now)
        let impostor = try PKIFixture(now: now)  // same subject, different keys
        expectIdentityError(.chainInvalid) {
            try pki.trust.validateIssuer(certificate: impostor.issuer, chain: [], key: impostor.issuerKey, now: now)
        }
    }

    @Test("an expired issuer is refused, saying when it expired")
    func expiredIssuer() throws {
        let pki = try PKIFixture(now: now.addingTimeInterval(-400 * 86400))
        let error = expectIdentityError(.expired) {
            try pki.trust.validateIssuer(certificate: pki.issuer, chain: [], key: pki.issuerKey, now: now)
        }
        #expect(error?.message.contains("expired at") == true)
    }

    @Test("an issuer that is not yet valid is refused")
    func notYetValid() throws {
        let pki = try PKIFixture(now: now.addingTimeInterval(3600))
        expectIdentityError(.notYetValid) {
            try pki.trust.validateIssuer(certificate: pki.issuer, chain: [], key: pki.issuerKey, now: now)
        }
    }

    @Test("a non-CA issuer is refused")
    func notACA() throws {
        let pki = try PKIFixture(now: now)
        let (leaf, leafKey) = try CertificateFactory.create(
            CertificateRequest(subject: "leaf", profile: .leaf, issuer: (pki.issuer, pki.issuerKey)),
            now: now
        )
        let error = expectIdentityError(.notACA) {
            try pki.trust.validateIssuer(certificate: leaf, chain: [pki.issuer], key: leafKey, now: now)
        }
        #expect(error?.message.contains("not a CA") == true)
    }

    @Test("an issuer key that does not match is refused")
    func keyMismatch() throws {
        let pki = try PKIFixture(now: now)
        expectIdentityError(.keyMismatch) {
            try pki.trust.validateIssuer(certificate: pki.issuer, chain: [], key: P256.Signing.PrivateKey(), now: now)
        }
    }

    @Test("an issuer signed through an extra intermediate validates when that intermediate is given")
    func deeperChain() throws {
        let now = self.now
        let (root, rootKey) = try CertificateFactory.create(
            CertificateRequest(subject: "root", profile: .rootCA),
            now: now
        )
        // A pathlen-unlimited middle CA (made as a root-profile cert re-signed by the root).
        let middleKey = P256.Signing.PrivateKey()
        let middle = try Certificate(
            version: .v3,
            serialNumber: .random128(),
            publicKey: .init(middleKey.publicKey),
            notValidBefore: now.addingTimeInterval(-60),
            notValidAfter: now.addingTimeInterval(86400 * 30),
            issuer: root.subject,
            subject: DistinguishedName { CommonName("middle") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1)) },
            issuerPrivateKey: .init(rootKey)
        )
        let (issuer, issuerKey) = try CertificateFactory.create(
            CertificateRequest(subject: "issuer", profile: .intermediateCA, issuer: (middle, middleKey)),
            now: now
        )
        let trust = TrustBundle(anchors: [root])
        expectIdentityError(.chainInvalid) {
            try trust.validateIssuer(certificate: issuer, chain: [], key: issuerKey, now: now)
        }
        let status = try trust.validateIssuer(certificate: issuer, chain: [middle], key: issuerKey, now: now)
        #expect(status.path.count == 3)
    }

    @Test("anchors read from PEM must be CAs")
    func anchorsMustBeCAs() throws {
        let pki = try PKIFixture(now: now)
        let (leaf, _) = try CertificateFactory.create(
            CertificateRequest(subject: "leaf", profile: .leaf, issuer: (pki.issuer, pki.issuerKey)),
            now: now
        )
        let bundle = try TrustBundle(pem: PEMFile.pem(pki.root), source: "root.crt")
        #expect(bundle.anchors == [pki.root])
        let error = expectIdentityError(.notACA) { try TrustBundle(pem: PEMFile.pem(leaf), source: "anchors.crt") }
        #expect(error?.message.contains("anchors.crt") == true)
    }
}

@Suite("Trust bundle: peer verification")
struct PeerVerificationTests {
    let now = Date()

    func workloadChain(_ pki: PKIFixture, identity: MeshIdentity, now: Date) throws -> [Certificate] {
        let key = WorkloadKey()
        return try pki.makeIssuer().certify(csrDER: key.csr(for: identity).der, granted: identity, now: now)
    }

    @Test("a workload chain verifies and yields its identity")
    func verifies() async throws {
        let pki = try PKIFixture(now: now)
        let chain = try workloadChain(pki, identity: web, now: now)
        let peer = try await pki.trust.verify(chain: chain, at: now).get()
        #expect(peer.identity == web)
        #expect(peer.chain == [chain[0], pki.issuer, pki.root])
    }

    @Test("the expected identity is enforced")
    func expected() async throws {
        let pki = try PKIFixture(now: now)
        let chain = try workloadChain(pki, identity: web, now: now)
        #expect(try await pki.trust.verify(chain: chain, at: now, expecting: web).get().identity == web)
        let result = await pki.trust.verify(chain: chain, at: now, expecting: api)
        #expect(throws: IdentityError(code: .identityMismatch, message: "")) { try result.get() }
    }

    @Test("a chain from another root is refused")
    func otherRoot() async throws {
        let pki = try PKIFixture(now: now)
        let other = try PKIFixture(now: now, rootSubject: "evil")
        let chain = try workloadChain(other, identity: web, now: now)
        let result = await pki.trust.verify(chain: chain, at: now)
        #expect(throws: IdentityError(code: .chainInvalid, message: "")) { try result.get() }
    }

    @Test("an expired leaf is refused as expired")
    func expired() async throws {
        let pki = try PKIFixture(now: now)
        let chain = try workloadChain(pki, identity: web, now: now)
        let result = await pki.trust.verify(chain: chain, at: now.addingTimeInterval(2 * 86400))
        #expect(throws: IdentityError(code: .expired, message: "")) { try result.get() }
    }

    @Test("a leaf without a mesh identity is refused unless identity is not required")
    func noIdentity() async throws {
        let pki = try PKIFixture(now: now)
        let (leaf, _) = try CertificateFactory.create(
            CertificateRequest(subject: "plain.example.com", profile: .leaf, issuer: (pki.issuer, pki.issuerKey)),
            now: now
        )
        let strict = await pki.trust.verify(chain: [leaf, pki.issuer], at: now)
        #expect(throws: IdentityError(code: .chainInvalid, message: "")) { try strict.get() }
        let lenient = try await pki.trust.verify(chain: [leaf, pki.issuer], at: now, requiringIdentity: false).get()
        #expect(lenient.identity == nil)
    }

    @Test("an identity of another trust domain is refused")
    func otherTrustDomain() async throws {
        let pki = try PKIFixture(now: now)
        let foreign = MeshIdentity(namespace: "test", serviceAccount: "web", trustDomain: "other.local")
        let chain = try pki.makeIssuer(trustDomain: "other.local").certify(
            csrDER: WorkloadKey().csr(for: foreign).der,
            granted: foreign,
            now: now
        )
        let result = await pki.trust.verify(chain: chain, at: now)
        #expect(throws: IdentityError(code: .chainInvalid, message: "")) { try result.get() }
        let otherDomain = TrustBundle(anchors: [pki.root], trustDomain: "other.local")
        #expect(try await otherDomain.verify(chain: chain, at: now).get().identity == foreign)
    }

    @Test("an empty chain is refused")
    func empty() async throws {
        let pki = try PKIFixture(now: now)
        let result = await pki.trust.verify(chain: [], at: now)
        #expect(throws: IdentityError(code: .chainInvalid, message: "")) { try result.get() }
    }
}

@Suite("Verifier policies")
struct PolicyTests {
    func leaf(sans: [String]) throws -> Certificate {
        let pki = try PKIFixture()
        return try CertificateFactory.create(
            CertificateRequest(subject: "leaf", profile: .leaf, sans: sans, issuer: (pki.issuer, pki.issuerKey))
        ).certificate
    }

    func passes(_ result: PolicyEvaluationResult) -> Bool {
        if case .meetsPolicy = result { return true }
        return false
    }

    @Test("MeshIdentityPolicy accepts matching DNS and URI identities of its trust domain")
    func meshAccepts() throws {
        let cert = try leaf(sans: [web.dnsName, web.spiffeURI])
        #expect(passes(MeshIdentityPolicy(trustDomain: "cluster.local").evaluate(leaf: cert)))
    }

    @Test("MeshIdentityPolicy refuses another trust domain, two identities, or none")
    func meshRefuses() throws {
        #expect(!passes(MeshIdentityPolicy(trustDomain: "other").evaluate(leaf: try leaf(sans: [web.spiffeURI]))))
        #expect(
            !passes(
                MeshIdentityPolicy(trustDomain: "cluster.local").evaluate(
                    leaf: try leaf(sans: [web.dnsName, api.spiffeURI])
                )
            )
        )
        #expect(!passes(MeshIdentityPolicy(trustDomain: "cluster.local").evaluate(leaf: try leaf(sans: []))))
    }

    @Test("ExpectedIdentityPolicy accepts only the expected identity")
    func expected() throws {
        let cert = try leaf(sans: [web.dnsName, web.spiffeURI])
        #expect(passes(ExpectedIdentityPolicy(web).evaluate(leaf: cert)))
        #expect(!passes(ExpectedIdentityPolicy(api).evaluate(leaf: cert)))
    }
}
