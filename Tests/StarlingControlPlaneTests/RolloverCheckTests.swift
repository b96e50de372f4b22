import Crypto
import Foundation
import GRPCCore
import StarlingAPI
@testable import StarlingControlPlane
import StarlingCore
import StarlingIdentity
import SwiftProtobuf
import Testing
import X509

/// `check` follows a trust anchor rollover through its phases, from the MeshConfig and what the
/// proxies' heartbeats report, and warns while a proxy would break at the next step.
@Suite(.timeLimit(.minutes(1)))
struct RolloverCheckTests {
    /// The install documents for `anchors` (PEM bundle) and an issuer.
    private func install(anchors: [Certificate], issuer: Certificate, issuerKeyPEM: String) -> [Resource] {
        let secret = Resource(
            name: "starling-identity-issuer", namespace: "starling",
            spec: SecretSpec(type: "kubernetes.io/tls", data: [
                "tls.crt": Array(PEMFile.pem(issuer).utf8), "tls.key": Array(issuerKeyPEM.utf8),
            ]))
        let mesh = Resource(
            name: "mesh",
            spec: MeshConfigSpec(
                clusterName: "test", trustDomain: "cluster.local",
                identity: MeshIdentitySettings(
                    trustAnchorsPEM: PEMFile.pem(anchors),
                    issuer: MeshIssuer(
                        certificatePEM: PEMFile.pem(issuer),
                        keySecret: SecretReference(name: "starling-identity-issuer", namespace: "starling")))))
        return [Resource(name: "starling", spec: NamespaceSpec()), secret, mesh]
    }

    private func checks(_ api: APIClients) async throws -> [String: Starling_V1_CheckResult] {
        let all = try await api.mesh.status(.init()).checks.filter { $0.name.hasPrefix("rollover") }
        return Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Waits until the controller's identity configuration has `issuer` and `anchors`.
    private func waitForCheck(_ api: APIClients, _ name: String, _ fragment: String) async throws -> Starling_V1_CheckResult {
        var last: Starling_V1_CheckResult?
        let ready = try await eventually(within: .seconds(5)) {
            last = try await checks(api)[name]
            return last?.message.contains(fragment) == true
        }
        #expect(ready, "check \(name) never said \"\(fragment)\"; last: \(last?.status ?? "none") \(last?.message ?? "")")
        return try #require(last)
    }

    @Test func checkFollowsATrustAnchorRolloverAndWarnsAboutLaggingProxies() async throws {
        let old = try TestPKI()
        let newPKI = try CertificateFactory.create(.init(subject: "identity.starling.cluster.local", profile: .rootCA))
        let newIssuerPKI = try CertificateFactory.create(
            .init(subject: "identity.starling.cluster.local", profile: .intermediateCA, issuer: (newPKI.certificate, newPKI.key)))
        let newRoot = newPKI.certificate
        let newIssuer = newIssuerPKI.certificate
        let newIssuerKeyPEM = PEMFile.pem(newIssuerPKI.key)
        try await withController { controller in
            try await controller.install(old)
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            try await controller.withClients(.token(token)) { api in
                _ = try await api.mesh.register(.with { $0.name = "web-1"; $0.address = "127.0.0.9" })
            }
            @Sendable func heartbeat(issuer: Certificate, anchors: [Certificate]) async throws {
                try await controller.withClients(.token(token)) { api in
                    _ = try await api.mesh.heartbeat(.with {
                        $0.namespace = "test"; $0.name = "web-1"
                        $0.certificateIssuerSha256 = issuer.sha256Fingerprint
                        $0.trustAnchorsSha256 = TrustBundle(anchors: anchors).fingerprint
                    })
                }
            }
            try await heartbeat(issuer: old.issuer, anchors: [old.root])
            try await controller.withClients { api in
                let stable = try await waitForCheck(api, "rollover", "one root")
                #expect(stable.status == "ok")

                // Phase 1: both roots, the old issuer. The proxy still trusts the old root alone.
                _ = try await api.apply(install(anchors: [old.root, newRoot], issuer: old.issuer, issuerKeyPEM: old.issuerKeyPEM))
                _ = try await waitForCheck(api, "rollover", "phase 1 of 3")
                let lagging = try await waitForCheck(api, "rollover-anchors", "do not trust the new root yet")
                #expect(lagging.status == "warning")
                #expect(lagging.message.contains("test/web-1"))
                try await heartbeat(issuer: old.issuer, anchors: [old.root, newRoot])
                #expect(try await waitForCheck(api, "rollover-anchors", "trusts all 2 roots").status == "ok")

                // Phase 2: the issuer signed by the new root; the proxy still holds the old one's.
                _ = try await api.apply(install(
                    anchors: [old.root, newRoot], issuer: newIssuer, issuerKeyPEM: newIssuerKeyPEM))
                _ = try await waitForCheck(api, "rollover", "phase 2 of 3")
                let stale = try await waitForCheck(api, "rollover-proxies", "still hold a certificate from the old chain")
                #expect(stale.status == "warning")
                try await heartbeat(issuer: newIssuer, anchors: [old.root, newRoot])
                #expect(try await waitForCheck(api, "rollover-proxies", "install with the new root alone").status == "ok")

                // Done: the new root alone. A proxy still on the bundle is a warning until it renews.
                _ = try await api.apply(install(
                    anchors: [newRoot], issuer: newIssuer, issuerKeyPEM: newIssuerKeyPEM))
                _ = try await waitForCheck(api, "rollover", "one root")
                #expect(try await waitForCheck(api, "rollover-anchors", "trust other roots").status == "warning")
                try await heartbeat(issuer: newIssuer, anchors: [newRoot])
                let done = try await eventually(within: .seconds(5)) { try await checks(api).keys.sorted() == ["rollover"] }
                let remaining = try await checks(api).keys.sorted()
                #expect(done, "after the rollover only the phase line remains: \(remaining)")
            }
        }
    }
    /// A gateway sends no heartbeat: `check` counts what the controller issued it, so it warns
    /// while the gateway still holds the previous issuer's certificate, and not once it renewed.
    @Test func checkCountsTheCertificateIssuedToAGateway() async throws {
        let root = try CertificateFactory.create(.init(subject: "identity.starling.cluster.local", profile: .rootCA))
        func issuer() throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
            try CertificateFactory.create(
                .init(subject: "identity.starling.cluster.local", profile: .intermediateCA, issuer: (root.certificate, root.key)))
        }
        let (issuerA, issuerB) = (try issuer(), try issuer())
        let installA = install(anchors: [root.certificate], issuer: issuerA.certificate, issuerKeyPEM: PEMFile.pem(issuerA.key))
        let installB = install(anchors: [root.certificate], issuer: issuerB.certificate, issuerKeyPEM: PEMFile.pem(issuerB.key))
        let gateway = MeshIdentity(namespace: "starling-multicluster", serviceAccount: "starling-gateway")
        let key = WorkloadKey()
        try await withController { controller in
            try await controller.withClients { api in
                _ = try await api.apply(installA)
                _ = try await waitForCheck(api, "rollover", "one root")
                @Sendable func certifyGateway() async throws {
                    _ = try await api.identity.certify(.with {
                        $0.identity = gateway.dnsName
                        $0.certificateSigningRequest = Data(try key.csr(for: gateway).der)
                    })
                }
                try await certifyGateway()
                // The issuer replaced (same root): the gateway holds the old one's certificate.
                _ = try await api.apply(installB)
                let stale = try await waitForCheck(api, "rollover-proxies", "from a previous issuer")
                #expect(stale.status == "warning")
                #expect(stale.message.contains("gateway at 127.0.0.1"), "\(stale.message)")
                try await certifyGateway()
                let renewed = try await eventually(within: .seconds(5)) { try await checks(api)["rollover-proxies"] == nil }
                let remaining = try await checks(api).keys.sorted()
                #expect(renewed, "after the gateway's renewal nothing is lagging: \(remaining)")
            }
        }
    }
    /// A gateway's entry is what it was issued until that certificate expires; then, for as long
    /// again, it is flagged as expired (it stopped renewing), and only then dropped.
    /// A gateway is named by its host, read from gRPC's peer description with the one split.
    @Test func aGatewaysHostIsReadFromTheGRPCPeer() {
        #expect(IdentityService.host(ofPeer: "ipv4:127.0.0.1:51234") == "127.0.0.1")
        #expect(IdentityService.host(ofPeer: "ipv6:[::1]:51234") == "::1")
        #expect(IdentityService.host(ofPeer: "unix:/tmp/api.sock") == "unix:/tmp/api.sock")
    }

    @Test func aGatewayThatStopsRenewingIsFlaggedBeforeItIsDropped() {
        let reports = CertificateReports()
        let start = ContinuousClock.now
        let report = CertificateReports.Report(issuer: "issuer", trustAnchors: "roots")
        reports.recordIssued("gateway at 10.0.0.1", report, notValidAfter: Date() + 60, validity: .seconds(60), now: start)
        #expect(reports.currentIssued(now: start + .seconds(30))["gateway at 10.0.0.1"] == .some(report))
        #expect(reports.currentIssued(now: start + .seconds(90))["gateway at 10.0.0.1"] == .some(nil))
        #expect(reports.currentIssued(now: start + .seconds(121))["gateway at 10.0.0.1"] == nil)
    }
}
