import Crypto
import Foundation
import StarlingCore
import Testing
import X509

@testable import StarlingIdentity

/// The real `openssl` CLI, run through `Process`.
enum OpenSSL {
    /// Path of the `openssl` executable on PATH, if any.
    static let path: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories {
            let candidate = "\(directory)/openssl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    static var isAvailable: Bool { path != nil }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var combined: String { stdout + stderr }
    }

    /// Runs `openssl ARGS` in `directory`, returning its exit status and output.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL) throws -> Output {
        guard let path else { throw TestFailure("openssl is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self)
        )
    }

    /// Runs openssl and fails the test with its output when it exits non-zero.
    @discardableResult
    static func succeed(_ arguments: [String], in directory: URL, sourceLocation: SourceLocation = #_sourceLocation)
        throws -> Output
    {
        let output = try run(arguments, in: directory)
        #expect(
            output.status == 0,
            "openssl \(arguments.joined(separator: " ")) failed: \(output.combined)",
            sourceLocation: sourceLocation
        )
        return output
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("starling-identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ text: String, to name: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func read(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// A root and an issuer made the way the walkthrough makes them.
struct PKIFixture {
    let root: Certificate
    let rootKey: P256.Signing.PrivateKey
    let issuer: Certificate
    let issuerKey: P256.Signing.PrivateKey
    let now: Date

    init(now: Date = Date(), rootSubject: String = "identity.starling.cluster.local") throws {
        self.now = now
        (root, rootKey) = try CertificateFactory.create(
            CertificateRequest(subject: rootSubject, profile: .rootCA),
            now: now
        )
        (issuer, issuerKey) = try CertificateFactory.create(
            CertificateRequest(subject: rootSubject, profile: .intermediateCA, issuer: (root, rootKey)),
            now: now
        )
    }

    var trust: TrustBundle { TrustBundle(anchors: [root]) }

    func makeIssuer(trustDomain: String = "cluster.local") throws -> Issuer {
        try Issuer(certificate: issuer, key: issuerKey, trust: trust, trustDomain: trustDomain, now: now)
    }
}

/// Expects `body` to throw an `IdentityError` with `code`; returns it for message checks.
@discardableResult
func expectIdentityError<T>(
    _ code: IdentityError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> T
) -> IdentityError? {
    do {
        _ = try body()
        Issue.record("expected IdentityError \(code), but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as IdentityError {
        #expect(
            error.code == code,
            "expected \(code), got \(error.code): \(error.message)",
            sourceLocation: sourceLocation
        )
        return error
    } catch {
        Issue.record("expected IdentityError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

let web = MeshIdentity(namespace: "test", serviceAccount: "web")
let api = MeshIdentity(namespace: "test", serviceAccount: "api")
