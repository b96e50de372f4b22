import Crypto
import Foundation
import StarlingCore
import Testing

@testable import StarlingIdentity

@Suite("Identity files")
struct IdentityFilesTests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }

    @Test("keys are written 0600 and certificates 0644")
    func modes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pki = try PKIFixture()
        try IdentityFiles.writeKey(pem: PEMFile.pem(pki.rootKey), to: dir.path("root.key"))
        try IdentityFiles.writeCertificate(pem: PEMFile.pem(pki.root), to: dir.path("root.crt"))
        #expect(try mode(dir.path("root.key")) == 0o600)
        #expect(try mode(dir.path("root.crt")) == 0o644)
        #expect(
            try PEMFile.privateKey(pem: dir.read("root.key"), source: "root.key").rawRepresentation
                == pki.rootKey.rawRepresentation
        )
        #expect(try PEMFile.certificates(pem: dir.read("root.crt"), source: "root.crt") == [pki.root])
    }

    @Test("an existing file is not overwritten unless asked, and overwriting keeps 0600")
    func overwrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("issuer.key")
        try IdentityFiles.writeKey(pem: "first\n", to: path)
        let error = expectIdentityError(.fileSystem) { try IdentityFiles.writeKey(pem: "second\n", to: path) }
        #expect(error?.message.contains("already exists") == true)
        #expect(try dir.read("issuer.key") == "first\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        try IdentityFiles.writeKey(pem: "second\n", to: path, overwrite: true)
        #expect(try dir.read("issuer.key") == "second\n")
        #expect(try mode(path) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["issuer.key"])
    }

    @Test("a missing directory is reported by name")
    func missingDirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let error = expectIdentityError(.fileSystem) {
            try IdentityFiles.writeKey(pem: "x", to: dir.path("nope/root.key"))
        }
        #expect(error?.message.contains("directory \(dir.path("nope")) does not exist") == true)
    }

    @Test("a location that cannot be created is reported with the system's errno text")
    func unwritable() {
        let error = expectIdentityError(.fileSystem) {
            try IdentityFiles.writeKey(pem: "x", to: "/proc/starling-test.key")
        }
        #expect(error?.message.hasPrefix("cannot create /proc/starling-test.key: ") == true)
        #expect(error?.message.contains("(errno ") == true)
    }

    @Test("reading a missing file names it")
    func readMissing() {
        let error = expectIdentityError(.fileSystem) { try IdentityFiles.read("/nonexistent/root.crt") }
        #expect(error?.message == "cannot read /nonexistent/root.crt: no such file")
    }
}
