import Crypto
import Foundation
import StarlingCore
import StarlingIdentity
import X509

/// Targets over `StarlingIdentity`: PEM and DER parsing, certificate summaries and chains, CSR
/// signing, join tokens.
enum IdentityTargets {
    /// The fixed time every check runs at (2026-12-06T12:00:00Z), so that an input behaves the
    /// same on every run; the committed corpus certificates are valid then.
    static let now = Date(timeIntervalSince1970: 1_796_558_400)

    // MARK: - PEM, certificates, keys

    /// Input is PEM text, or one mode byte and DER: 0 certificate, 1 PKCS#8 key, 2 SEC1 key, 3 CSR.
    static func pem(_ data: [UInt8]) {
        let text: String
        if data.first == UInt8(ascii: "-") || data.first == UInt8(ascii: " ") || data.first == UInt8(ascii: "\n")
            || data.isEmpty
        {
            text = String(decoding: data, as: UTF8.self)
        } else {
            let labels = ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "CERTIFICATE REQUEST"]
            let label = labels[Int(data[0]) % labels.count]
            let base64 = Data(data.dropFirst()).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
            text = "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
        }
        if let certificates = try? PEMFile.certificates(pem: text, source: "fuzz") {
            for certificate in certificates {
                let summary = CertificateSummary.summarize(
                    certificate, chain: certificates, roots: [certificate] + signing.trust.anchors, now: now)
                _ = summary.text()
                // What parsed writes back as PEM that parses to the same certificate.
                let again = try? PEMFile.certificate(pem: PEMFile.pem(certificate), source: "fuzz-again")
                check(again == certificate, "certificate \(certificate.subject) does not read back from its PEM")
            }
            let verified = blocking { await signing.trust.verify(chain: certificates, at: now, requiringIdentity: false) }
            _ = verified
            _ = try? TrustBundle(pem: text, source: "fuzz")
        }
        if let key = try? PEMFile.privateKey(pem: text, source: "fuzz") {
            let again = try? PEMFile.privateKey(pem: PEMFile.pem(key), source: "fuzz-again")
            check(again?.rawRepresentation == key.rawRepresentation, "private key does not read back from its PEM")
            _ = WorkloadKey(privateKey: key).matches(signing.issuer.certificate)
        }
        if let csr = try? PEMFile.certificateSigningRequest(pem: text, source: "fuzz") {
            // The controller signs CSRs from the network: a CSR that passes must give a leaf
            // for exactly the granted identity, chaining to the trust anchor.
            let granted = MeshIdentity(namespace: "test", serviceAccount: "podinfo")
            if let chain = try? signing.issuer.certify(csr: csr, granted: granted, lifetime: 3600, now: now) {
                let leaf = chain.first
                let result = blocking { await signing.trust.verify(chain: chain, at: now, expecting: granted) }
                if case .failure(let error) = result {
                    check(false, "a certified CSR gave a chain that does not verify for \(granted): \(error); leaf \(String(describing: leaf))")
                }
            }
        }
    }

    /// A root and an issuer made once per process (the CSR check signs with it).
    struct Signing: Sendable {
        var trust: TrustBundle
        var issuer: Issuer
    }

    static let signing: Signing = {
        do {
            let root = try CertificateFactory.create(
                CertificateRequest(subject: "identity.starling.cluster.local", profile: .rootCA),
                now: now.addingTimeInterval(-3600))
            let issuer = try CertificateFactory.create(
                CertificateRequest(subject: "identity.starling.cluster.local", profile: .intermediateCA, issuer: root),
                now: now.addingTimeInterval(-3600))
            let trust = TrustBundle(anchors: [root.certificate])
            let signer = try Issuer(
                certificate: issuer.certificate, key: issuer.key, trust: trust, trustDomain: "cluster.local", now: now)
            return Signing(trust: trust, issuer: signer)
        } catch {
            setupFailed("making the fuzzer's issuer failed: \(error)")
        }
    }()

    // MARK: - Join tokens

    /// The key every token is verified with: bytes 0…31. tests/fuzz/corpus/join-token holds
    /// tokens signed with it (the way `starling token create` signs).
    static var tokenKey: SymmetricKey { SymmetricKey(data: (0..<32).map { UInt8($0) }) }

    /// First byte even: the rest is a token, verified as it is (forged, truncated, garbage).
    /// Odd: the rest is `HEADER-JSON\nCLAIMS-JSON`, signed here with ``tokenKey`` so the checks
    /// past the MAC (algorithm, claims, audience, expiry) see fuzzed values.
    static func joinToken(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let mode = input.byte()
        let token: String
        if mode & 1 == 0 {
            token = input.rest()
        } else {
            let header = Array(input.line().utf8)
            let claims = input.restBytes()
            let signingInput = base64URL(header) + "." + base64URL(claims)
            let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: tokenKey)
            token = signingInput + "." + base64URL(Array(mac))
        }
        let audiences: Set<String> = [JoinToken.Audience.join, JoinToken.Audience.link]
        guard let claims = try? JoinToken.verify(token, key: tokenKey, audiences: audiences, now: now) else { return }
        _ = claims.identity()
        _ = claims.expiry
        // Claims that verified sign again to a token that verifies to the same claims.
        let resigned = JoinToken.sign(claims, key: tokenKey)
        let again = try? JoinToken.verify(resigned, key: tokenKey, audiences: audiences, now: now)
        check(again == claims, "verified claims \(claims) do not survive signing again")
        // Another key never verifies it.
        let other = SymmetricKey(data: [UInt8](repeating: 0xA5, count: 32))
        check((try? JoinToken.verify(token, key: other, audiences: audiences, now: now)) == nil, "a token verified with another key")
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
