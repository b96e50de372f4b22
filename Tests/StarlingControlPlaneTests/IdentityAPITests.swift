import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import StarlingIdentity
import SwiftASN1
import SwiftProtobuf
import Testing
import X509

/// A test root and issuer, made the way `starling certs create` makes them.
struct TestPKI {
    let root: Certificate
    let issuer: Certificate
    let rootPEM: String
    let issuerPEM: String
    let issuerKeyPEM: String

    init() throws {
        let root = try CertificateFactory.create(.init(subject: "identity.starling.cluster.local", profile: .rootCA))
        let issuer = try CertificateFactory.create(
            .init(subject: "identity.starling.cluster.local", profile: .intermediateCA, issuer: (root.certificate, root.key)))
        self.root = root.certificate
        self.issuer = issuer.certificate
        rootPEM = PEMFile.pem(root.certificate)
        issuerPEM = PEMFile.pem(issuer.certificate)
        issuerKeyPEM = PEMFile.pem(issuer.key)
    }

    /// The documents `starling install` prints for this PKI (built here the way
    /// `InstallCommand.resources` builds them): the namespace, the issuer secret, the MeshConfig.
    func installResources(clusterName: String = "test") -> [Resource] {
        let secret = Resource(
            name: "starling-identity-issuer", namespace: "starling",
            spec: SecretSpec(type: "kubernetes.io/tls", data: ["tls.crt": Array(issuerPEM.utf8), "tls.key": Array(issuerKeyPEM.utf8)]))
        let mesh = Resource(
            name: "mesh",
            spec: MeshConfigSpec(
                clusterName: clusterName, trustDomain: "cluster.local",
                identity: MeshIdentitySettings(
                    trustAnchorsPEM: rootPEM,
                    issuer: MeshIssuer(
                        certificatePEM: issuerPEM,
                        keySecret: SecretReference(name: "starling-identity-issuer", namespace: "starling")))))
        return [Resource(name: "starling", spec: NamespaceSpec()), secret, mesh]
    }
}

extension TestController {
    /// Applies the install resources for `pki` and waits until the controller signs with it.
    func install(_ pki: TestPKI) async throws {
        try await withClients { api in
            try await api.apply(pki.installResources())
            let configured = try await eventually(within: .seconds(5)) {
                do {
                    _ = try await api.identity.certify(.with { $0.identity = "probe.test.serviceaccount.identity.starling.cluster.local" })
                    return true
                } catch let error as RPCError where error.code == .failedPrecondition {
                    return false
                } catch let error as RPCError {
                    return error.code != .failedPrecondition  // configured; the empty CSR is refused
                }
            }
            guard configured else { throw HarnessError("identity was not configured within 5 s of the install") }
        }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct IdentityAPITests {
    @Test func certifyWithAJoinTokenReturnsALeafAndTheIssuerThatVerifyToTheRoot() async throws {
        let pki = try TestPKI()
        try await withController { controller in
            try await controller.install(pki)
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            let identity = MeshIdentity(namespace: "test", serviceAccount: "web")
            let key = WorkloadKey()
            let csr = try key.csr(for: identity)

            let response = try await controller.withClients(.none) { api in
                try await api.identity.certify(.with {
                    $0.identity = identity.dnsName
                    $0.token = token
                    $0.certificateSigningRequest = Data(csr.der)
                })
            }
            let chain = try response.chain.map { try Certificate(derEncoded: Array($0)) }
            try #require(chain.count == 2)
            let leaf = chain[0]
            #expect(chain[1] == pki.issuer)
            #expect(key.matches(leaf))
            #expect(response.trustAnchorsPem.contains(pki.rootPEM.trimmingCharacters(in: .whitespacesAndNewlines)))

            let verified = await TrustBundle(anchors: [pki.root]).verify(chain: chain, expecting: identity)
            switch verified {
            case .success(let peer):
                #expect(peer.identity == identity)
                #expect(peer.chain.last == pki.root)
            case .failure(let error):
                Issue.record("the issued chain does not verify to the root: \(error)")
            }

            let names = try #require(try leaf.extensions.subjectAlternativeNames)
            #expect(names.contains(.dnsName(identity.dnsName)))
            #expect(names.contains(.uniformResourceIdentifier(identity.spiffeURI)))

            let now = Date()
            let remaining = leaf.notValidAfter.timeIntervalSince(now)
            #expect(abs(remaining - 86400) < 300, "leaf valid for \(remaining) s more, expected about 24 h")
            #expect(leaf.notValidBefore <= now)
            #expect(response.validUntil == Int64(leaf.notValidAfter.timeIntervalSince1970))
        }
    }

    @Test func certifyForAnotherIdentityThanTheTokenGrantsIsPermissionDenied() async throws {
        let pki = try TestPKI()
        try await withController { controller in
            try await controller.install(pki)
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            let other = MeshIdentity(namespace: "test", serviceAccount: "db")
            let csr = try WorkloadKey().csr(for: other)
            try await controller.withClients(.token(token)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.identity.certify(.with {
                        $0.identity = other.dnsName
                        $0.certificateSigningRequest = Data(csr.der)
                    })
                }
                #expect(error?.code == .permissionDenied)
                #expect(error?.message.contains("web.test") == true, "message: \(error?.message ?? "")")
            }
        }
    }

    @Test func certifyWithAGrantedNameButACSRForAnotherIdentityIsRefused() async throws {
        let pki = try TestPKI()
        try await withController { controller in
            try await controller.install(pki)
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            let granted = MeshIdentity(namespace: "test", serviceAccount: "web")
            let csr = try WorkloadKey().csr(for: MeshIdentity(namespace: "kube-system", serviceAccount: "admin"))
            try await controller.withClients(.token(token)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.identity.certify(.with {
                        $0.identity = granted.dnsName
                        $0.certificateSigningRequest = Data(csr.der)
                    })
                }
                #expect(error?.code == .permissionDenied || error?.code == .invalidArgument)
            }
        }
    }

    @Test func certifyBeforeInstallIsFailedPreconditionSayingIdentityIsNotConfigured() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            let identity = MeshIdentity(namespace: "test", serviceAccount: "web")
            let csr = try WorkloadKey().csr(for: identity)
            try await controller.withClients(.token(token)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.identity.certify(.with {
                        $0.identity = identity.dnsName
                        $0.certificateSigningRequest = Data(csr.der)
                    })
                }
                #expect(error?.code == .failedPrecondition)
                #expect(error?.message.contains("identity is not configured") == true, "message: \(error?.message ?? "")")
            }
        }
    }

    @Test func certifyWithoutACredentialIsUnauthenticated() async throws {
        let pki = try TestPKI()
        try await withController { controller in
            try await controller.install(pki)
            let identity = MeshIdentity(namespace: "test", serviceAccount: "web")
            let csr = try WorkloadKey().csr(for: identity)
            try await controller.withClients(.none) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.identity.certify(.with {
                        $0.identity = identity.dnsName
                        $0.certificateSigningRequest = Data(csr.der)
                    })
                }
                #expect(error?.code == .unauthenticated)
            }
        }
    }
}
