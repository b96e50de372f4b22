@preconcurrency import Crypto
import Foundation
import StarlingIdentity
import SwiftASN1
import X509

/// The controller's own secrets, made on first start and kept in its data directory, 0600:
/// the admin credential (a bearer token for the API), the key that signs join tokens, and the
/// API's self-signed serving certificate, which clients pin as their only root.
struct ControllerCredentials: Sendable {
    var adminToken: String
    var tokenKey: SymmetricKey
    var apiCertificate: Certificate
    var apiKey: P256.Signing.PrivateKey
    var apiCertificatePEM: String
    var apiKeyPEM: String

    static let adminTokenFile = "admin-token"
    static let tokenKeyFile = "token-key"
    static let apiCertificateFile = "api.crt"
    static let apiKeyFile = "api.key"

    /// Loads the credentials from `directory`, making any that are missing.
    /// The API certificate is remade when it does not name `apiHost` and every one of `otherNames`
    /// (the other replicas' addresses, so that one certificate serves them all), or expires within
    /// 30 days.
    static func loadOrCreate(
        directory: String, apiHost: String, otherNames: [String] = [], now: Date = Date()
    ) throws -> ControllerCredentials {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        let adminToken: String
        if let text = try? String(contentsOfFile: path(adminTokenFile), encoding: .utf8), !text.isEmpty {
            adminToken = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            adminToken = "starling-admin." + randomBase64URL(bytes: 32)
            try IdentityFiles.writeSecret(
                Array((adminToken + "\n").utf8), to: path(adminTokenFile), overwrite: true, what: "admin token")
        }

        let tokenKey: SymmetricKey
        if let data = fm.contents(atPath: path(tokenKeyFile)), data.count == 32 {
            tokenKey = SymmetricKey(data: data)
        } else {
            let key = SymmetricKey(size: .bits256)
            let bytes = key.withUnsafeBytes { Array($0) }
            try IdentityFiles.writeSecret(bytes, to: path(tokenKeyFile), overwrite: true, what: "token signing key")
            tokenKey = key
        }

        if let certPEM = try? String(contentsOfFile: path(apiCertificateFile), encoding: .utf8),
            let keyPEM = try? String(contentsOfFile: path(apiKeyFile), encoding: .utf8),
            let cert = try? PEMFile.certificates(pem: certPEM, source: apiCertificateFile).first,
            let key = try? PEMFile.privateKey(pem: keyPEM, source: apiKeyFile),
            cert.publicKey == Certificate.PublicKey(key.publicKey),
            cert.notValidAfter > now.addingTimeInterval(30 * 86400),
            ([apiHost] + otherNames).allSatisfy({ servingCertificate(cert, names: $0) })
        {
            return ControllerCredentials(
                adminToken: adminToken, tokenKey: tokenKey, apiCertificate: cert, apiKey: key,
                apiCertificatePEM: certPEM, apiKeyPEM: keyPEM)
        }
        var names: [String] = []
        for name in [apiHost] + otherNames where !names.contains(name) { names.append(name) }
        let (cert, key) = try ServingCertificate.selfSigned(
            commonName: "starling-controller", ipAddresses: names.filter(isIPAddress),
            dnsNames: names.filter { !isIPAddress($0) } + ["localhost"],
            validity: 365 * 86400, now: now)
        let certPEM = PEMFile.pem(cert)
        let keyPEM = PEMFile.pem(key)
        try IdentityFiles.writeKey(pem: keyPEM, to: path(apiKeyFile), overwrite: true)
        try IdentityFiles.writeCertificate(pem: certPEM, to: path(apiCertificateFile), overwrite: true)
        return ControllerCredentials(
            adminToken: adminToken, tokenKey: tokenKey, apiCertificate: cert, apiKey: key,
            apiCertificatePEM: certPEM, apiKeyPEM: keyPEM)
    }

    private static func servingCertificate(_ cert: Certificate, names host: String) -> Bool {
        guard let sans = try? cert.extensions.subjectAlternativeNames else { return false }
        return sans.contains { name in
            switch name {
            case .dnsName(let d): d == host
            case .ipAddress(let bytes): ipString(bytes.bytes) == host
            default: false
            }
        }
    }

    private static func ipString(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.count == 4 ? bytes.map(String.init).joined(separator: ".") : ""
    }

    private static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    static func randomBase64URL(bytes count: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: count)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
