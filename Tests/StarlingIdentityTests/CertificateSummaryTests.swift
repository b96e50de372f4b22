import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

@Suite("Certificate summaries (starling certs inspect)")
struct CertificateSummaryTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("an issuer summary names subject, issuer, CA path length, usages, key type and verification")
    func issuerSummary() throws {
        let pki = try PKIFixture(now: now)
        let summary = CertificateSummary.summarize(pki.issuer, roots: [pki.root], now: now)
        #expect(summary.subject == "CN=identity.starling.cluster.local")
        #expect(summary.issuer == "CN=identity.starling.cluster.local")
        #expect(summary.isCA)
        #expect(summary.pathLen == 0)
        #expect(summary.keyUsage == ["keyCertSign", "cRLSign"])
        #expect(summary.keyType == "ECDSA P-256")
        #expect(summary.notBefore == "2027-01-15T08:00:00Z")
        #expect(summary.notAfter == "2028-01-15T08:00:00Z")
        #expect(summary.serial == pki.issuer.serialNumber.hex)
        #expect(summary.sha256Fingerprint.count == 32 * 3 - 1)
        #expect(summary.sha256Fingerprint == summary.sha256Fingerprint.uppercased())
        #expect(summary.verification == "ok")
        #expect(!summary.selfSigned)
        #expect(CertificateSummary.summarize(pki.root, now: now).selfSigned)
        #expect(CertificateSummary.summarize(pki.root, now: now).verification == nil)
    }

    @Test("verification failures are described")
    func verificationFailure() throws {
        let pki = try PKIFixture(now: now)
        let other = try PKIFixture(now: now, rootSubject: "other")
        let summary = CertificateSummary.summarize(pki.issuer, roots: [other.root], now: now)
        #expect(summary.verification?.contains("not signed by any of the trust anchors ('CN=other')") == true)
        let expired = CertificateSummary.summarize(
            pki.issuer,
            roots: [pki.root],
            now: now.addingTimeInterval(400 * 86400)
        )
        #expect(expired.verification?.contains("expired at") == true)
    }

    @Test("a workload leaf lists its SANs and mesh identity")
    func leafSummary() throws {
        let pki = try PKIFixture(now: now)
        let chain = try pki.makeIssuer().certify(csrDER: WorkloadKey().csr(for: web).der, granted: web, now: now)
        let summary = CertificateSummary.summarize(chain[0], chain: [pki.issuer], roots: [pki.root], now: now)
        #expect(summary.sans.dns == [web.dnsName])
        #expect(summary.sans.uri == [web.spiffeURI])
        #expect(summary.meshIdentity == web.dnsName)
        #expect(summary.extendedKeyUsage == ["serverAuth", "clientAuth"])
        #expect(summary.verification == "ok")
        #expect(!summary.isCA && summary.pathLen == nil)
    }

    @Test("the text form is aligned key: value lines")
    func text() throws {
        let pki = try PKIFixture(now: now)
        let text = CertificateSummary.summarize(pki.issuer, roots: [pki.root], now: now).text()
        let lines = text.split(separator: "\n")
        let rows = lines.map { line -> (key: Substring, value: Substring, column: Int) in
            let key = line.prefix { $0 != ":" }
            let value = line.dropFirst(key.count + 1).drop { $0 == " " }
            return (key, value, line.count - value.count)
        }
        #expect(rows.first?.key == "Subject" && rows.first?.value == "CN=identity.starling.cluster.local")
        #expect(rows.contains { $0.key == "CA" && $0.value == "true (path length 0)" })
        #expect(rows.contains { $0.key == "Verification" && $0.value == "ok" })
        let valueColumns = Set(rows.map(\.column))
        #expect(valueColumns.count == 1)
    }

    @Test("the summary encodes as JSON with stable field names")
    func json() throws {
        let pki = try PKIFixture(now: now)
        let summary = CertificateSummary.summarize(pki.root, now: now)
        let data = try JSONEncoder().encode(summary)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in [
            "subject", "issuer", "serial", "sans", "notBefore", "notAfter", "isCA", "keyUsage", "keyType",
            "sha256Fingerprint",
        ] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(try JSONDecoder().decode(CertificateSummary.self, from: data) == summary)
    }
}
