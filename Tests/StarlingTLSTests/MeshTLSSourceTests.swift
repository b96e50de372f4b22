import Foundation
import NIOSSL
import StarlingCore
import StarlingIdentity
import StarlingTLS
import Testing

/// Building and rotating `MeshTLS` without the network.
struct MeshTLSSourceTests {
    let pki: TestPKI

    init() throws {
        pki = try TestPKI()
    }

    @Test func identityComesFromTheLeafCertificate() throws {
        let tls = try pki.meshTLS(.test("web", "shop"))
        #expect(tls.identity == MeshIdentity(namespace: "shop", serviceAccount: "web"))
        #expect(tls.certificateChain.count == 2)
        #expect(tls.notAfter > Date())
    }

    @Test func aKeyOfAnotherCertificateIsRefused() throws {
        let (chain, _) = try pki.workload(.test("web"))
        #expect(throws: MeshTLSError(.keyMismatch, "")) {
            try MeshTLS(chain: chain, key: WorkloadKey().privateKey, trustAnchors: [pki.root])
        }
    }

    @Test func anEmptyChainIsRefused() throws {
        #expect(throws: MeshTLSError(.invalidCertificate, "")) {
            try MeshTLS(chain: [], key: WorkloadKey().privateKey, trustAnchors: [pki.root])
        }
    }

    @Test func aLeafOfAnotherTrustDomainIsRefused() throws {
        let (chain, key) = try pki.workload(.test("web"))
        #expect(throws: MeshTLSError(.invalidCertificate, "")) {
            try MeshTLS(chain: chain, key: key.privateKey, trustAnchors: [pki.root], trustDomain: "other.local")
        }
    }

    @Test func rotationToAnotherIdentityIsRefusedAndKeepsTheCurrentCertificate() throws {
        let tls = try pki.meshTLS(.test("web"))
        let before = tls.certificateChain
        let (chain, key) = try pki.workload(.test("api"))
        #expect(throws: MeshTLSError(.identityChanged, "")) { try tls.update(chain: chain, key: key.privateKey) }
        #expect(tls.certificateChain == before)
    }

    @Test func rotationWithAMismatchedKeyIsRefused() throws {
        let tls = try pki.meshTLS(.test("web"))
        let (chain, _) = try pki.workload(.test("web"))
        #expect(throws: MeshTLSError(.keyMismatch, "")) { try tls.update(chain: chain, key: WorkloadKey().privateKey) }
    }

    @Test func contextsAreCachedUntilRotation() throws {
        let tls = try pki.meshTLS(.test("web"))
        let server = try tls.serverContext()
        #expect(try tls.serverContext() === server)
        #expect(server.configuration.minimumTLSVersion == .tlsv13)
        #expect(server.configuration.applicationProtocols == ["h2", "starling-opaque"])
        let (chain, key) = try pki.workload(.test("web"))
        try tls.update(chain: chain, key: key.privateKey)
        #expect(try tls.serverContext() !== server)
    }
}
