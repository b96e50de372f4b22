import Foundation
@testable import StarlingCLI
import Testing

/// The program `cluster create` runs as `PROGRAM controller …` in the end-to-end tests: the
/// `starling` executable (or the development build's `starling-dev`) built next to the tests.
let cliClusterControllerBinary: String? = {
    guard let tests = try? ClusterProcess.currentExecutable() else { return nil }
    let directory = (tests as NSString).deletingLastPathComponent
    for name in ["starling-dev", "starling"] {
        let candidate = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}()

/// A loopback /16 for one end-to-end test, away from 127.1–127.20 that real local clusters use.
func cliClusterTestRange() -> ClusterAddressRange {
    ClusterAddressRange(octet: Int.random(in: 150...250)) ?? ClusterAddressRange(octet: 200)!
}

@Suite struct CLIClusterTests {
    @Test func newClustersTakeTheLowestFreeRange() throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        let a = try registry.reserve(name: "a", requestedRange: nil)
        let b = try registry.reserve(name: "b", requestedRange: nil)
        #expect(a.addressRange == "127.1.0.0/16")
        #expect(a.apiAddress == "127.1.0.1:8086")
        #expect(a.adminAddress == "127.1.0.1:9990")
        #expect(b.addressRange == "127.2.0.0/16")

        try FileManager.default.removeItem(atPath: registry.directory(of: "a"))
        let c = try registry.reserve(name: "c", requestedRange: nil)
        #expect(c.addressRange == "127.1.0.0/16")
        let d = try registry.reserve(name: "d", requestedRange: ClusterAddressRange(parsing: "127.9.0.0/16"))
        #expect(d.apiAddress == "127.9.0.1:8086")
        #expect(try registry.list().clusters.map(\.name) == ["b", "c", "d"])
    }

    @Test func aReplicatedClusterPutsReplicaKOnTheKthAddressWithOneCertificateNamingAll() throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        let record = try registry.reserve(
            name: "prod", requestedRange: ClusterAddressRange(parsing: "127.9.0.0/16"),
            store: "postgres://u@db:5432/s", replicas: 3)
        #expect(record.replicaList.map(\.apiAddress) == ["127.9.0.1:8086", "127.9.0.2:8086", "127.9.0.3:8086"])
        #expect(record.replicaList.map(\.adminAddress) == ["127.9.0.1:9990", "127.9.0.2:9990", "127.9.0.3:9990"])
        let second = registry.controllerArguments(for: record, replica: 2)
        #expect(second.contains("127.9.0.2:8086"))
        #expect(second.contains(registry.directory(of: "prod") + "/replica-2/data"))
        #expect(second.contains("--store"))
        let names = second.enumerated().filter { $0.offset > 0 && second[$0.offset - 1] == "--api-certificate-name" }.map(\.element)
        #expect(names == ["127.9.0.1", "127.9.0.3"], "every other replica is named in the shared API certificate")
        // Read back from cluster.yaml, a one-replica cluster has no replica list of its own.
        #expect(try registry.record(named: "prod").replicas == 3)
        let single = try registry.reserve(name: "one", requestedRange: ClusterAddressRange(parsing: "127.10.0.0/16"))
        #expect(single.replicas == nil)
        #expect(single.replicaList.map(\.apiAddress) == ["127.10.0.1:8086"])
        #expect(!registry.controllerArguments(for: single).contains("--api-certificate-name"))
    }

    @Test func twoClustersWithTheSameLoopbackRangeAreRefused() throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        _ = try registry.reserve(name: "workload1", requestedRange: ClusterAddressRange(parsing: "127.7.0.0/16"))
        let error = #expect(throws: CLIError.self) {
            try registry.reserve(name: "workload2", requestedRange: ClusterAddressRange(parsing: "127.7.0.0/16"))
        }
        #expect(error?.message == "address range 127.7.0.0/16 is already used by cluster workload1")
        #expect(!FileManager.default.fileExists(atPath: registry.directory(of: "workload2")))
    }

    @Test func creatingAnExistingClusterIsRefused() throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        _ = try registry.reserve(name: "workload1", requestedRange: nil)
        let error = #expect(throws: CLIError.self) {
            try registry.reserve(name: "workload1", requestedRange: nil)
        }
        #expect(
            error?.message == "cluster workload1 already exists (delete it first with `starling cluster delete workload1`)"
        )
    }

    @Test(arguments: ["Workload1", "-a", "a-", "a_b", "", String(repeating: "a", count: 64), "../etc"])
    func namesThatAreNotDNSLabelsAreRefused(name: String) {
        #expect(throws: CLIError.self) { try ClusterRegistry.validate(name: name) }
    }

    @Test(arguments: [
        ("127.0.0.0/16", "reserved"),
        ("10.1.0.0/16", "inside 127.0.0.0/8"),
        ("127.3.0.0/24", "must be /16"),
        ("127.3.1.0/16", "host bits"),
        ("127.3.0.0", "CIDR"),
        ("127.300.0.0/16", "not an IPv4 address"),
    ])
    func addressRangesOutsideLoopbackSlash16AreRefused(text: String, reason: String) {
        let error = #expect(throws: CLIError.self) { try ClusterAddressRange(parsing: text) }
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains(text) == true)
    }

    @Test func unknownClusterErrorListsTheClusters() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        _ = try registry.reserve(name: "alpha", requestedRange: nil)
        _ = try registry.reserve(name: "beta", requestedRange: nil)
        await #expect(throws: CLIError.self) {
            try await registry.delete(name: "gamma") { _ in }
        }
        let error = #expect(throws: CLIError.self) {
            try registry.exportCredentials(name: "gamma", to: home.path + "/out")
        }
        #expect(error?.message == "no cluster named gamma in \(registry.clustersDirectory) (have: alpha, beta)")
    }

    @Test func aPIDThatIsNotAControllerIsNeitherRunningNorSignalled() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        _ = try registry.reserve(name: "stale", requestedRange: nil)
        // This test process: alive, but not a controller. Delete must not signal it.
        try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: registry.directory(of: "stale") + "/controller.pid"))
        #expect(registry.state(of: "stale").state == .stopped)
        var lines: [String] = []
        try await registry.delete(name: "stale") { lines.append($0) }
        #expect(lines.contains { $0.contains("not signalling it") })
        #expect(!FileManager.default.fileExists(atPath: registry.directory(of: "stale")))
    }

    @Test func deleteRemovesTheContextAndUnsetsCurrentContext() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path)
        _ = try registry.reserve(name: "one", requestedRange: nil)
        try saveContextFile(
            ContextFile(currentContext: "one", contexts: [cliTestContext("one"), cliTestContext("two")]),
            path: registry.configPath
        )
        try await registry.delete(name: "one") { _ in }
        let file = try loadContextFile(path: registry.configPath)
        #expect(file.currentContext == nil)
        #expect(file.contexts.map(\.name) == ["two"])
    }

    @Test func listTableIsAlignedWithKubectlStyleAges() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let rows = [
            ClusterCommand.List.Row(
                name: "workload1", status: .running, pid: 42, api: "127.1.0.1:8086", admin: "127.1.0.1:9990",
                range: "127.1.0.0/16", created: now.addingTimeInterval(-300).formatted(.iso8601)
            ),
            ClusterCommand.List.Row(
                name: "w2", status: .stopped, pid: nil, api: "127.12.0.1:8086", admin: "127.12.0.1:9990",
                range: "127.12.0.0/16", created: now.addingTimeInterval(-3 * 86400).formatted(.iso8601)
            ),
        ]
        #expect(
            ClusterCommand.List.table(rows, now: now) == """
                NAME       STATUS   API              RANGE          AGE
                workload1  running  127.1.0.1:8086   127.1.0.0/16   5m
                w2         stopped  127.12.0.1:8086  127.12.0.0/16  3d

                """
        )
        #expect(ClusterCommand.List.age(from: now.addingTimeInterval(-42), to: now) == "42s")
        #expect(ClusterCommand.List.age(from: now.addingTimeInterval(-7200), to: now) == "2h")
    }

    @Test(.enabled(if: cliClusterControllerBinary != nil, "needs the starling (or starling-dev) executable built next to the tests"))
    func createStartsAControllerAddsTheContextAndDeleteStopsIt() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path, controllerExecutable: cliClusterControllerBinary)
        let range = cliClusterTestRange()
        var progress: [String] = []
        let record = try await registry.create(name: "workload1", requestedRange: range) { progress.append($0) }
        var pid: Int32?
        do {
            #expect(progress.first == "starting controller for workload1 on 127.\(range.octet).0.1:8086 ...")
            #expect(record.apiAddress == "127.\(range.octet).0.1:8086")
            let state = registry.state(of: "workload1")
            pid = state.pid
            #expect(state.state == .running)

            let file = try loadContextFile(path: registry.configPath)
            #expect(file.currentContext == "workload1")
            #expect(try CLITemporaryDirectory.mode(of: registry.configPath) == 0o600)
            let resolved = try ContextOptions.resolve(file, path: registry.configPath, requested: nil)
            #expect(resolved.server == record.apiAddress)
            #expect(resolved.adminServer == record.adminAddress)
            #expect(resolved.caPEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
            #expect(!resolved.token.isEmpty)

            let exported = home.path + "/configs/workload1"
            try registry.exportCredentials(name: "workload1", to: exported)
            #expect(try CLITemporaryDirectory.mode(of: exported) == 0o600)
            let credentials = try loadContextFile(path: exported)
            #expect(credentials.currentContext == "workload1")
            #expect(credentials.contexts == file.contexts)

            let again = await #expect(throws: CLIError.self) {
                try await registry.create(name: "workload1", requestedRange: nil) { _ in }
            }
            #expect(again?.message.contains("already exists") == true)
        } catch {
            try? await registry.delete(name: "workload1") { _ in }
            throw error
        }
        try await registry.delete(name: "workload1") { _ in }
        if let pid { #expect(!ClusterProcess.isAlive(pid)) }
        #expect(!FileManager.default.fileExists(atPath: registry.directory(of: "workload1")))
        #expect(try loadContextFile(path: registry.configPath).contexts.isEmpty)
    }

    @Test func aControllerThatNeverGetsReadyIsStoppedAndCreateTimesOut() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        // Stands in for a controller that starts but never serves /ready.
        let script = try home.write("#!/bin/sh\necho still starting\nexec sleep 60\n", to: "slow-controller")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let registry = ClusterRegistry(
            home: home.path + "/home",
            controllerExecutable: script,
            readyTimeout: .milliseconds(1500),
            stopGracePeriod: .seconds(2)
        )
        let error = await #expect(throws: CLIError.self) {
            try await registry.create(name: "slow", requestedRange: cliClusterTestRange()) { _ in }
        }
        #expect(error?.message.contains("was not ready after") == true)
        #expect(error?.message.contains("still starting") == true)
        #expect(error?.hint?.contains("slow-controller controller --cluster-name slow") == true)
        #expect(!FileManager.default.fileExists(atPath: registry.directory(of: "slow")))
    }

    @Test(.enabled(if: cliClusterControllerBinary?.hasSuffix("starling-dev") == true, "needs the fake controller of starling-dev"))
    func aControllerThatExitsFailsCreateWithItsLogAndLeavesNothing() async throws {
        let home = try CLITemporaryDirectory()
        defer { home.cleanup() }
        let registry = ClusterRegistry(home: home.path, controllerExecutable: cliClusterControllerBinary)
        // The development fake controller exits 3 after 25 lines for names starting with "fail".
        let error = await #expect(throws: CLIError.self) {
            try await registry.create(name: "fail1", requestedRange: cliClusterTestRange()) { _ in }
        }
        let message = error?.message ?? ""
        #expect(message.contains("exited (exit status 3) before it was ready"))
        #expect(message.contains("fake failure line 25"))
        #expect(!message.contains("fake failure line 5\n"))
        #expect(!FileManager.default.fileExists(atPath: registry.directory(of: "fail1")))
        #expect(!FileManager.default.fileExists(atPath: registry.configPath))
    }
}
