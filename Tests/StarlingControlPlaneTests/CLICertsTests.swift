import ArgumentParser
import Foundation
@testable import StarlingCLI
import Testing

/// `openssl`, for checking what `certs create` writes and for making keys it must read.
let cliCertsOpenSSL: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// Runs openssl in `directory`; returns its exit status and combined output.
func cliCertsRunOpenSSL(_ arguments: [String], in directory: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: cliCertsOpenSSL ?? "/usr/bin/openssl")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Parses (running `validate()`) and runs `starling certs create ARGUMENTS` in `directory`.
func cliCertsCreate(_ arguments: [String], in directory: String) throws {
    let absolute = arguments.map { argument in
        argument.hasSuffix(".crt") || argument.hasSuffix(".key") ? directory + "/" + argument : argument
    }
    let command = try CertsCommand.Create.parse(absolute)
    try command.run()
}

/// The message ArgumentParser would print for a parse or validation failure of `certs create`.
func cliCertsCreateRefusal(_ arguments: [String], in directory: String) -> String? {
    do {
        try cliCertsCreate(arguments, in: directory)
        return nil
    } catch {
        return CertsCommand.Create.message(for: error)
    }
}

let cliCertsRootArguments = [
    "identity.starling.cluster.local", "root.crt", "root.key", "--profile", "root-ca", "--no-password", "--insecure",
]
let cliCertsIssuerArguments = [
    "identity.starling.cluster.local", "issuer.crt", "issuer.key", "--profile", "intermediate-ca",
    "--not-after", "8760h", "--no-password", "--insecure", "--ca", "root.crt", "--ca-key", "root.key",
]

@Suite struct CLICertsTests {
    @Test(.enabled(if: cliCertsOpenSSL != nil, "needs openssl"))
    func rootAndIssuerMadeLikeTheWalkthroughPassOpensslVerify() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        try cliCertsCreate(cliCertsIssuerArguments, in: dir.path)

        let verify = try cliCertsRunOpenSSL(["verify", "-CAfile", "root.crt", "issuer.crt"], in: dir.path)
        #expect(verify.status == 0, "\(verify.output)")
        #expect(verify.output.contains("issuer.crt: OK"))
        let text = try cliCertsRunOpenSSL(["x509", "-in", "issuer.crt", "-noout", "-text"], in: dir.path).output
        #expect(text.contains("CA:TRUE, pathlen:0"))

        #expect(try CLITemporaryDirectory.mode(of: dir.path + "/root.key") == 0o600)
        #expect(try CLITemporaryDirectory.mode(of: dir.path + "/issuer.key") == 0o600)
        let keyCheck = try cliCertsRunOpenSSL(["pkey", "-in", "issuer.key", "-noout", "-check"], in: dir.path)
        #expect(keyCheck.status == 0, "\(keyCheck.output)")
    }

    @Test(.enabled(if: cliCertsOpenSSL != nil, "needs openssl"))
    func leafWithSANsVerifiesThroughTheIssuer() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        try cliCertsCreate(cliCertsIssuerArguments, in: dir.path)
        try cliCertsCreate(
            [
                "podinfo.test", "leaf.crt", "leaf.key", "--ca", "issuer.crt", "--ca-key", "issuer.key",
                "--san", "10.1.2.3", "--san", "spiffe://cluster.local/ns/test/sa/podinfo", "--not-after", "90m",
                "--no-password", "--insecure",
            ],
            in: dir.path
        )
        let verify = try cliCertsRunOpenSSL(
            ["verify", "-CAfile", "root.crt", "-untrusted", "issuer.crt", "leaf.crt"],
            in: dir.path
        )
        #expect(verify.status == 0, "\(verify.output)")
        let text = try cliCertsRunOpenSSL(["x509", "-in", "leaf.crt", "-noout", "-text"], in: dir.path).output
        #expect(text.contains("IP Address:10.1.2.3"))
        #expect(text.contains("URI:spiffe://cluster.local/ns/test/sa/podinfo"))
        #expect(text.contains("DNS:podinfo.test"))
    }

    @Test func refusesToWriteAnUnencryptedKeyWithoutBothFlags() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let expected =
            "refusing to write an unencrypted private key: pass --no-password --insecure (starling does not encrypt keys)"
        for flags in [[], ["--no-password"], ["--insecure"]] {
            let message = cliCertsCreateRefusal(["root", "root.crt", "root.key", "--profile", "root-ca"] + flags, in: dir.path)
            #expect(message == expected)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func refusesToOverwriteExistingFilesUnlessForced() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        let first = try String(contentsOfFile: dir.path + "/root.crt", encoding: .utf8)

        let message = cliCertsCreateRefusal(cliCertsRootArguments, in: dir.path)
        #expect(message == "\(dir.path)/root.crt already exists; refusing to overwrite it (pass --force to replace it)")
        #expect(try String(contentsOfFile: dir.path + "/root.crt", encoding: .utf8) == first)

        try cliCertsCreate(cliCertsRootArguments + ["--force"], in: dir.path)
        #expect(try String(contentsOfFile: dir.path + "/root.crt", encoding: .utf8) != first)
        #expect(try CLITemporaryDirectory.mode(of: dir.path + "/root.key") == 0o600)
    }

    @Test func profileAndIssuerFlagsAreCheckedBeforeAnythingIsWritten() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let insecure = ["--no-password", "--insecure"]
        #expect(
            cliCertsCreateRefusal(["x", "a.crt", "a.key", "--profile", "issuer"] + insecure, in: dir.path)?
                .contains("--profile issuer is not one of root-ca, intermediate-ca, leaf") == true
        )
        #expect(
            cliCertsCreateRefusal(["x", "a.crt", "a.key", "--profile", "intermediate-ca"] + insecure, in: dir.path)?
                .contains("pass --ca CRT and --ca-key KEY") == true
        )
        #expect(
            cliCertsCreateRefusal(["x", "a.crt", "a.key", "--profile", "root-ca", "--ca", "r.crt", "--ca-key", "r.key"] + insecure, in: dir.path)?
                .contains("do not pass --ca or --ca-key") == true
        )
        #expect(
            cliCertsCreateRefusal(["x", "a.crt", "a.key", "--profile", "root-ca", "--not-after", "3 years"] + insecure, in: dir.path)?
                .contains("--not-after '3 years' is neither a duration") == true
        )
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func wrongIssuerKeyIsRefusedNamingBothFiles() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        try cliCertsCreate(["other", "other.crt", "other.key", "--profile", "root-ca", "--no-password", "--insecure"], in: dir.path)
        let error = #expect(throws: CLIError.self) {
            try cliCertsCreate(
                ["x", "issuer.crt", "issuer.key", "--profile", "intermediate-ca", "--ca", "root.crt", "--ca-key", "other.key",
                 "--no-password", "--insecure"],
                in: dir.path
            )
        }
        #expect(error?.message.contains("does not belong") == true)
        #expect(error?.hint == "--ca-key \(dir.path)/other.key must be the private key of --ca \(dir.path)/root.crt")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/issuer.key"))
    }

    @Test func inspectJSONHasTheSummaryFieldsAndVerifiesAgainstRoots() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        try cliCertsCreate(cliCertsIssuerArguments, in: dir.path)

        let inspect = try CertsCommand.Inspect.parse([dir.path + "/issuer.crt", "--roots", dir.path + "/root.crt", "-o", "json"])
        let (output, failure) = try inspect.render(now: Date())
        #expect(failure == nil)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(json["subject"] as? String == "CN=identity.starling.cluster.local")
        #expect(json["issuer"] as? String == "CN=identity.starling.cluster.local")
        #expect(json["isCA"] as? Bool == true)
        #expect(json["pathLen"] as? Int == 0)
        #expect(json["keyType"] as? String == "ECDSA P-256")
        #expect(json["selfSigned"] as? Bool == false)
        #expect(json["verification"] as? String == "ok")
        for field in ["serial", "notBefore", "notAfter", "sha256Fingerprint", "keyUsage", "sans"] {
            #expect(json[field] != nil, "missing \(field)")
        }

        let wrongRoots = try CertsCommand.Inspect.parse([dir.path + "/root.crt", "--roots", dir.path + "/issuer.crt"])
        let (text, wrong) = try wrongRoots.render(now: Date())
        #expect(text.contains("Self-Signed:"))
        #expect(wrong?.message.contains("does not verify against the roots in \(dir.path)/issuer.crt") == true)
    }

    @Test func inspectOfAMissingOrNonCertificateFileSaysWhich() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let missing = try CertsCommand.Inspect.parse([dir.path + "/nope.crt"])
        let error = #expect(throws: CLIError.self) { try missing.render(now: Date()) }
        #expect(error?.message.contains("\(dir.path)/nope.crt") == true)

        try cliCertsCreate(cliCertsRootArguments, in: dir.path)
        let key = try CertsCommand.Inspect.parse([dir.path + "/root.key"])
        let keyError = #expect(throws: CLIError.self) { try key.render(now: Date()) }
        #expect(keyError?.message.contains("root.key") == true)
    }

    @Test(.enabled(if: cliCertsOpenSSL != nil, "needs openssl"), arguments: ["sec1", "pkcs8"])
    func issuerSignedByAnOpensslMadeRootVerifies(keyFormat: String) throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let keyCommand =
            keyFormat == "sec1"
            ? ["ecparam", "-name", "prime256v1", "-genkey", "-out", "root.key"]
            : ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "root.key"]
        #expect(try cliCertsRunOpenSSL(keyCommand, in: dir.path).status == 0)
        let root = try cliCertsRunOpenSSL(
            [
                "req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=openssl root", "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", "root.crt",
            ],
            in: dir.path
        )
        #expect(root.status == 0, "\(root.output)")

        try cliCertsCreate(cliCertsIssuerArguments, in: dir.path)
        let verify = try cliCertsRunOpenSSL(["verify", "-CAfile", "root.crt", "issuer.crt"], in: dir.path)
        #expect(verify.status == 0, "\(verify.output)")

        let inspect = try CertsCommand.Inspect.parse([dir.path + "/root.crt", "--roots", dir.path + "/root.crt"])
        let (text, failure) = try inspect.render(now: Date())
        #expect(failure == nil)
        #expect(text.contains("CN=openssl root"))
    }
}
