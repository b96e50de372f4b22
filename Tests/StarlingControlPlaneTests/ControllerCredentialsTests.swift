import Foundation
import Testing
import X509

@testable import StarlingControlPlane

/// The controller's own secrets on disk: owner-only from creation, kept across restarts, and
/// replaced atomically (still owner-only) when one is unusable.
@Suite struct ControllerCredentialsTests {
    @Test func secretsAreOwnerOnlyAndSurviveARestart() throws {
        let directory = try CLITemporaryDirectory()
        defer { directory.cleanup() }
        let first = try ControllerCredentials.loadOrCreate(directory: directory.path, apiHost: "127.0.0.1")
        for name in ["admin-token", "token-key", "api.key"] {
            #expect(try CLITemporaryDirectory.mode(of: directory.path + "/" + name) == 0o600, "\(name)")
        }
        #expect(try CLITemporaryDirectory.mode(of: directory.path + "/api.crt") == 0o644)
        let tokenKey = FileManager.default.contents(atPath: directory.path + "/token-key")
        #expect(tokenKey?.count == 32)

        let second = try ControllerCredentials.loadOrCreate(directory: directory.path, apiHost: "127.0.0.1")
        #expect(second.adminToken == first.adminToken)
        #expect(FileManager.default.contents(atPath: directory.path + "/token-key") == tokenKey)
        #expect(second.apiKeyPEM == first.apiKeyPEM)
    }

    @Test func anUnusableTokenKeyIsReplacedOwnerOnly() throws {
        let directory = try CLITemporaryDirectory()
        defer { directory.cleanup() }
        let keyPath = try directory.write("short", to: "token-key")
        chmod(keyPath, 0o644)
        _ = try ControllerCredentials.loadOrCreate(directory: directory.path, apiHost: "127.0.0.1")
        #expect(FileManager.default.contents(atPath: keyPath)?.count == 32)
        #expect(try CLITemporaryDirectory.mode(of: keyPath) == 0o600)
        // No temporary file is left beside it.
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(!names.contains { $0.contains(".tmp-") })
    }

    /// Replicas share one API certificate that names every replica: a copy of the data directory
    /// on another replica's host keeps it, so clients that pin it reach every replica.
    @Test func oneCertificateServesEveryReplicaNamed() throws {
        let directory = try CLITemporaryDirectory()
        defer { directory.cleanup() }
        let replicas = ["10.0.0.1", "10.0.0.2", "controller-3.example"]
        let first = try ControllerCredentials.loadOrCreate(
            directory: directory.path, apiHost: replicas[0], otherNames: Array(replicas.dropFirst()))
        let sans = try #require(try first.apiCertificate.extensions.subjectAlternativeNames)
        #expect(sans.count == 4)  // three replicas and localhost
        // Replica 2 starts on a copy of the directory, naming the others.
        let second = try ControllerCredentials.loadOrCreate(
            directory: directory.path, apiHost: replicas[1], otherNames: [replicas[0], replicas[2]])
        #expect(second.apiCertificatePEM == first.apiCertificatePEM)
        // A replica the certificate does not name gets a new one (and clients must be given it).
        let other = try ControllerCredentials.loadOrCreate(directory: directory.path, apiHost: "10.0.0.9")
        #expect(other.apiCertificatePEM != first.apiCertificatePEM)
    }
}
