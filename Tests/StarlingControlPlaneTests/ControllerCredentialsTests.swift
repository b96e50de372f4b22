import Foundation
import Testing

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
}
