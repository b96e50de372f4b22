import ArgumentParser
import Foundation
@testable import StarlingCLI
import Testing

/// A fresh temporary directory, removed by the caller with `cleanup()`.
struct CLITemporaryDirectory {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/starling-cli-test-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func cleanup() {
        try? FileManager.default.removeItem(atPath: path)
    }

    func write(_ text: String, to name: String) throws -> String {
        let file = path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }

    static func mode(of path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

/// A syntactically valid PEM certificate body for contexts (contexts only check the shape).
let cliTestCAPEM = """
    -----BEGIN CERTIFICATE-----
    MIIBVzCB/qADAgECAhBzdGFybGluZ3Rlc3RjZXJ0MAoGCCqGSM49BAMCMBExDzAN
    -----END CERTIFICATE-----

    """

func cliTestContext(_ name: String, server: String = "127.1.0.1:8086") -> ContextFile.Context {
    ContextFile.Context(
        name: name,
        clusterName: name,
        server: server,
        adminServer: "127.1.0.1:9990",
        certificateAuthorityData: Data(cliTestCAPEM.utf8).base64EncodedString(),
        token: "token-\(name)"
    )
}

func contextOptions(_ arguments: [String]) throws -> ContextOptions {
    try ContextOptions.parse(arguments)
}

@Suite struct CLIContextTests {
    @Test func configFlagWinsOverEnvironmentAndHome() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let flagPath = dir.path + "/flag-config"
        let envPath = dir.path + "/env-config"
        try saveContextFile(ContextFile(currentContext: "flag", contexts: [cliTestContext("flag")]), path: flagPath)
        try saveContextFile(ContextFile(currentContext: "env", contexts: [cliTestContext("env")]), path: envPath)
        try saveContextFile(
            ContextFile(currentContext: "home", contexts: [cliTestContext("home")]),
            path: dir.path + "/home/config"
        )
        let environment = ["STARLING_CONFIG": envPath, "STARLING_HOME": dir.path + "/home", "HOME": dir.path]

        #expect(try contextOptions(["--config", flagPath]).resolve(environment: environment).name == "flag")
        #expect(try contextOptions([]).resolve(environment: environment).name == "env")
        var noConfigVariable = environment
        noConfigVariable["STARLING_CONFIG"] = nil
        #expect(try contextOptions([]).resolve(environment: noConfigVariable).name == "home")
    }

    @Test func homeDefaultsToDotStarlingUnderHOME() {
        #expect(StarlingPaths.home(environment: ["HOME": "/home/ops"]) == "/home/ops/.starling")
        #expect(StarlingPaths.configPath(flag: nil, environment: ["HOME": "/home/ops"]) == "/home/ops/.starling/config")
        #expect(StarlingPaths.configPath(flag: "~/configs/w1", environment: ["HOME": "/home/ops"]) == "/home/ops/configs/w1")
    }

    @Test func contextFlagWinsOverCurrentContextWhichWinsOverTheOnlyContext() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/config"
        let environment = ["STARLING_CONFIG": path]
        try saveContextFile(
            ContextFile(currentContext: "a", contexts: [cliTestContext("a"), cliTestContext("b", server: "127.2.0.1:8086")]),
            path: path
        )
        #expect(try contextOptions([]).resolve(environment: environment).name == "a")
        let b = try contextOptions(["--context", "b"]).resolve(environment: environment)
        #expect(b.name == "b")
        #expect(b.serverHost == "127.2.0.1")
        #expect(b.serverPort == 8086)
        #expect(b.caPEM == cliTestCAPEM)
        #expect(b.token == "token-b")
        #expect(b.configPath == path)

        try saveContextFile(ContextFile(currentContext: nil, contexts: [cliTestContext("only")]), path: path)
        #expect(try contextOptions([]).resolve(environment: environment).name == "only")
    }

    @Test func missingConfigSaysHowToCreateOne() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/nothing-here"
        let error = #expect(throws: CLIError.self) {
            try contextOptions(["--config", path]).resolve(environment: [:])
        }
        #expect(
            error?.message == "no config at \(path): create a cluster with `starling cluster create NAME` or pass --config"
        )
    }

    @Test func unknownContextListsTheContextsThereAre() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/config"
        try saveContextFile(ContextFile(currentContext: "a", contexts: [cliTestContext("a"), cliTestContext("b")]), path: path)
        let error = #expect(throws: CLIError.self) {
            try contextOptions(["--config", path, "--context", "x"]).resolve(environment: [:])
        }
        #expect(error?.message == "context x not found in \(path) (have: a, b)")
    }

    @Test func severalContextsWithoutCurrentContextAsksForContextFlag() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/config"
        try saveContextFile(ContextFile(currentContext: nil, contexts: [cliTestContext("a"), cliTestContext("b")]), path: path)
        let error = #expect(throws: CLIError.self) {
            try contextOptions(["--config", path]).resolve(environment: [:])
        }
        #expect(error?.message.contains("no current-context") == true)
        #expect(error?.hint?.contains("--context") == true)
    }

    @Test func malformedFileErrorNamesThePath() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = try dir.write("contexts: [ {name: a, server: 1 ", to: "broken")
        let error = #expect(throws: CLIError.self) {
            try contextOptions(["--config", path]).resolve(environment: [:])
        }
        #expect(error?.message.hasPrefix("\(path) is not a valid Starling config file") == true)

        let missingField = try dir.write(
            "apiVersion: starling.io/v1alpha1\nkind: Config\ncontexts:\n- name: a\n  server: 127.1.0.1:8086\n",
            to: "missing-field"
        )
        let fieldError = #expect(throws: CLIError.self) {
            try loadContextFile(path: missingField)
        }
        #expect(fieldError?.message.contains("missing field") == true)
        #expect(fieldError?.message.contains(missingField) == true)
    }

    @Test func badServerAddressNamesTheContextAndFile() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/config"
        try saveContextFile(ContextFile(contexts: [cliTestContext("a", server: "127.1.0.1")]), path: path)
        let error = #expect(throws: CLIError.self) {
            try contextOptions(["--config", path]).resolve(environment: [:])
        }
        #expect(error?.message.contains("server of context a in \(path)") == true)
    }

    @Test func savedFileIsPrivateAndRoundTrips() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/nested/dir/config"
        let file = ContextFile(currentContext: "workload1", contexts: [cliTestContext("workload1")])
        try saveContextFile(file, path: path)
        #expect(try CLITemporaryDirectory.mode(of: path) == 0o600)
        #expect(try loadContextFile(path: path) == file)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("current-context: workload1"))
        #expect(text.contains("certificate-authority-data:"))
        #expect(text.contains("admin-server: 127.1.0.1:9990"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/nested/dir")
        #expect(leftovers == ["config"])
    }

    @Test func readsTheDocumentedFormat() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let data = Data(cliTestCAPEM.utf8).base64EncodedString()
        let path = try dir.write(
            """
            apiVersion: starling.io/v1alpha1
            kind: Config
            current-context: workload1
            contexts:
            - name: workload1
              cluster-name: workload1
              server: 127.1.0.1:8086          # controller gRPC API (TLS)
              admin-server: 127.1.0.1:9990
              certificate-authority-data: \(data)
              token: ADMIN-TOKEN

            """,
            to: "config"
        )
        let resolved = try contextOptions(["--config", path]).resolve(environment: [:])
        #expect(resolved.server == "127.1.0.1:8086")
        #expect(resolved.adminServer == "127.1.0.1:9990")
        #expect(resolved.clusterName == "workload1")
        #expect(resolved.token == "ADMIN-TOKEN")
    }

    @Test func wrongVersionKindAndDuplicateNamesAreRejectedWithThePath() throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        let version = try dir.write("apiVersion: v1\nkind: Config\ncontexts: []\n", to: "version")
        #expect((#expect(throws: CLIError.self) { try loadContextFile(path: version) })?.message
            == "\(version): unsupported apiVersion 'v1' (this starling reads starling.io/v1alpha1)")
        let kind = try dir.write("apiVersion: starling.io/v1alpha1\nkind: Pod\n", to: "kind")
        #expect((#expect(throws: CLIError.self) { try loadContextFile(path: kind) })?.message.hasPrefix("\(kind): kind is 'Pod'") == true)
        let path = dir.path + "/duplicates"
        try saveContextFile(ContextFile(contexts: [cliTestContext("a"), cliTestContext("a")]), path: path)
        #expect((#expect(throws: CLIError.self) { try loadContextFile(path: path) })?.message
            == "\(path): context 'a' is defined more than once; keep one of them")
    }

    @Test func removingTheCurrentContextUnsetsIt() {
        var file = ContextFile(currentContext: "a", contexts: [cliTestContext("a"), cliTestContext("b")])
        let removed = file.remove(contextNamed: "a")
        #expect(removed)
        #expect(file.currentContext == nil)
        #expect(file.contexts.map(\.name) == ["b"])
    }
}
