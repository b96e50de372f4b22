import Crypto
import Foundation
import StarlingCore
import StarlingTLS
import SwiftASN1
import Testing
import X509

/// ``ClientCertificateRules`` as a plain value, fed the calls BoringSSL's verify callback makes:
/// the anchor first and the leaf last for a verified path, `preverified: false` for a certificate
/// BoringSSL refused.
struct ClientCertificateRulesTests {
    let root: CertificateMaker.Made
    let issuer: CertificateMaker.Made
    let identity = MeshIdentity(namespace: "test", serviceAccount: "tester")

    init() {
        root = CertificateMaker.ca("root")
        issuer = CertificateMaker.ca("issuer", signer: root)
    }

    /// A verified path: anchor, issuer, then `leaf`.
    private func path(_ leaf: Certificate) -> [Certificate] { [root.certificate, issuer.certificate, leaf] }

    private func evaluate(_ chain: [Certificate], rules: ClientCertificateRules = ClientCertificateRules())
        -> (accepted: Bool, refusal: MeshTLSError?)
    {
        var rules = rules
        for certificate in chain where !rules.evaluate(certificate, preverified: true) {
            return (false, rules.refusal)
        }
        return (true, rules.refusal)
    }

    @Test func aWorkloadLeafUnderTheIssuerIsAccepted() {
        let leaf = CertificateMaker.leaf(identity, signer: issuer)
        let result = evaluate(path(leaf))
        #expect(result.accepted)
        #expect(result.refusal == nil)
    }

    @Test func aPathOfFourIsAcceptedAndAFifthCertificateIsRefusedAsTooLong() {
        let int1 = CertificateMaker.ca("int1", signer: root)
        let int2 = CertificateMaker.ca("int2", signer: int1)
        let int3 = CertificateMaker.ca("int3", signer: int2)
        let four = [root.certificate, int1.certificate, int2.certificate, CertificateMaker.leaf(identity, signer: int2)]
        #expect(evaluate(four).accepted)
        let five = [
            root.certificate, int1.certificate, int2.certificate, int3.certificate,
            CertificateMaker.leaf(identity, signer: int3),
        ]
        let result = evaluate(five)
        #expect(!result.accepted)
        #expect(result.refusal == MeshTLSError(.chainTooLong, ""))
        #expect(result.refusal?.message.contains("certificate 5") == true)
        #expect(result.refusal?.message.contains("at most 4") == true)
    }

    @Test func theMaximumPathLengthIsConfigurable() {
        let leaf = CertificateMaker.leaf(identity, signer: issuer)
        #expect(!evaluate(path(leaf), rules: ClientCertificateRules(maximumPathLength: 2)).accepted)
    }

    @Test func aCACertificateNamingAMeshIdentityIsRefusedAsALeaf() {
        let leaf = CertificateMaker.leaf(identity, signer: issuer, isCA: true)
        let result = evaluate(path(leaf))
        #expect(!result.accepted)
        #expect(result.refusal == MeshTLSError(.caCertificateAsLeaf, ""))
        #expect(result.refusal?.message.contains("CA:TRUE") == true)
    }

    @Test func aLeafWithoutExtendedKeyUsageIsRefused() {
        let leaf = CertificateMaker.leaf(identity, signer: issuer, usages: nil)
        let result = evaluate(path(leaf))
        #expect(result.refusal == MeshTLSError(.noClientAuthUsage, ""))
        #expect(result.refusal?.message.contains("no extendedKeyUsage") == true)
    }

    @Test func aLeafForServerAuthOnlyIsRefused() {
        let leaf = CertificateMaker.leaf(identity, signer: issuer, usages: [.serverAuth])
        let result = evaluate(path(leaf))
        #expect(result.refusal == MeshTLSError(.noClientAuthUsage, ""))
        #expect(result.refusal?.message.contains("serverAuth, without clientAuth") == true)
    }

    @Test func aLeafNamingAnIPAddressBesidesItsIdentityIsRefused() {
        let leaf = CertificateMaker.leaf(
            identity, signer: issuer, extraNames: [.ipAddress(ASN1OctetString(contentBytes: [127, 66, 0, 200]))])
        let result = evaluate(path(leaf))
        #expect(result.refusal == MeshTLSError(.nonMeshName, ""))
        #expect(result.refusal?.message.contains("IP 127.66.0.200") == true)
    }

    @Test func aLeafNamingOnlyAnIPAddressIsLeftToTheIdentityCheck() {
        // No mesh identity: not recognisable as a workload leaf here; the listener refuses it when
        // it reads the peer's identity, and describes its names.
        let leaf = CertificateMaker.leaf(
            nil, signer: issuer, extraNames: [.ipAddress(ASN1OctetString(contentBytes: [127, 66, 0, 200]))])
        #expect(evaluate(path(leaf)).accepted)
        #expect(ClientCertificateRules.describeNames(leaf) == "SANs: IP 127.66.0.200")
    }

    @Test func aCertificateBoringSSLRefusedIsNamedExpiredNotYetValidOrUnknownAuthority() {
        let now = Date()
        let expired = CertificateMaker.leaf(
            identity, signer: issuer, notBefore: now - 7200, notAfter: now - 3600)
        let future = CertificateMaker.leaf(identity, signer: issuer, notBefore: now + 3600, notAfter: now + 7200)
        let foreign = CertificateMaker.leaf(identity, signer: CertificateMaker.ca("other root"))
        let serverOnly = CertificateMaker.leaf(identity, signer: issuer, usages: [.serverAuth])

        func refused(_ certificate: Certificate) -> MeshTLSError? {
            var rules = ClientCertificateRules()
            let accepted = rules.evaluate(certificate, preverified: false, now: now)
            #expect(!accepted)
            return rules.refusal
        }
        #expect(refused(expired) == MeshTLSError(.certificateExpired, ""))
        #expect(refused(expired)?.message.contains("expired at") == true)
        #expect(refused(future) == MeshTLSError(.certificateNotYetValid, ""))
        #expect(refused(serverOnly) == MeshTLSError(.noClientAuthUsage, ""))
        #expect(refused(foreign) == MeshTLSError(.unknownAuthority, ""))
        #expect(refused(foreign)?.message.contains("unknown authority ('CN=other root', key id ") == true)
    }

    @Test func theFirstRefusalIsKept() {
        var rules = ClientCertificateRules()
        let first = rules.evaluate(CertificateMaker.leaf(identity, signer: issuer, isCA: true), preverified: true)
        let second = rules.evaluate(root.certificate, preverified: false)
        #expect(!first && !second)
        #expect(rules.refusal == MeshTLSError(.caCertificateAsLeaf, ""))
    }

    @Test func anSNINamingAnotherWorkloadIsRefusedAndNoneOrOurOwnIsAccepted() {
        let served = MeshIdentity(namespace: "test", serviceAccount: "podinfo")
        #expect(MeshTLS.serverNameProblem(nil, identity: served) == nil)
        #expect(MeshTLS.serverNameProblem(served.dnsName, identity: served) == nil)
        #expect(MeshTLS.serverNameProblem(served.dnsName.uppercased() + ".", identity: served) == nil)
        let other = MeshTLS.serverNameProblem(identity.dnsName, identity: served)
        #expect(other == MeshTLSError(.serverNameMismatch, ""))
        #expect(other?.message.contains("identity \(identity)") == true)
        #expect(MeshTLS.serverNameProblem("podinfo.example.com", identity: served)?.message.contains("'podinfo.example.com'") == true)
    }
}

/// Certificates made by hand, each wrong in the one way a test asks for.
enum CertificateMaker {
    struct Made {
        var certificate: Certificate
        var key: P256.Signing.PrivateKey
    }

    static func ca(_ name: String, signer: Made? = nil) -> Made {
        let key = P256.Signing.PrivateKey()
        let subject = try! DistinguishedName { CommonName(name) }
        let certificate = try! Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: Date() - 3600, notValidAfter: Date() + 86400,
            issuer: signer?.certificate.subject ?? subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try! Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
                if let signer {
                    AuthorityKeyIdentifier(keyIdentifier: try! signer.certificate.extensions.subjectKeyIdentifier!.keyIdentifier)
                }
            },
            issuerPrivateKey: Certificate.PrivateKey(signer?.key ?? key))
        return Made(certificate: certificate, key: key)
    }

    static func leaf(
        _ identity: MeshIdentity?, signer: Made, isCA: Bool = false,
        usages: [ExtendedKeyUsage.Usage]? = [.serverAuth, .clientAuth], extraNames: [GeneralName] = [],
        notBefore: Date = Date() - 3600, notAfter: Date = Date() + 3600
    ) -> Certificate {
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = []
        if let identity { names += [.dnsName(identity.dnsName), .uniformResourceIdentifier(identity.spiffeURI)] }
        names += extraNames
        return try! Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: signer.certificate.subject, subject: try! DistinguishedName { CommonName(identity?.dnsName ?? "leaf") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try! Certificate.Extensions {
                Critical(
                    isCA ? BasicConstraints.isCertificateAuthority(maxPathLength: nil) : BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyCertSign: isCA))
                if let usages { try! ExtendedKeyUsage(usages) }
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: try! signer.certificate.extensions.subjectKeyIdentifier!.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(signer.key))
    }
}
