import ArgumentParser
import Foundation
import Testing

@testable import StarlingCLI
@testable import StarlingControlPlane

/// What an operator runs Starling on their own hosts with: systemd units and contexts for clusters
/// created elsewhere.
@Suite struct CLIOperationsTests {
    @Test func systemdUnitsAreHardenedAndListEveryReplica() throws {
        let settings = SystemdUnits.Settings(
            clusterName: "prod", store: "postgres://starling@db:5432/starling",
            replicas: ["10.0.0.1:8086", "10.0.0.2:8086", "10.0.0.3:8086"],
            otherReplicaNames: ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        let controller = SystemdUnits.controller(settings)
        let proxy = SystemdUnits.proxy(settings)
        let gateway = SystemdUnits.gateway(settings)
        for unit in [controller, gateway, proxy] {
            for line in ["User=starling", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet="] {
                #expect(unit.contains("\n" + line + "\n"), "\(line)")
            }
        }
        #expect(controller.contains("--store postgres://starling@db:5432/starling"))
        #expect(controller.contains("--api-certificate-name 10.0.0.2"))
        #expect(controller.contains("EnvironmentFile=-/etc/starling/controller.env"))
        #expect(proxy.contains("proxy --controller 10.0.0.1:8086,10.0.0.2:8086,10.0.0.3:8086 "))
        #expect(gateway.contains("gateway --controller 10.0.0.1:8086,10.0.0.2:8086,10.0.0.3:8086 "))
        #expect(gateway.contains("--cluster-name prod --listen-address ${LISTEN}"))
        // One ExecStart line each: the continuation lines are joined.
        for unit in [proxy, gateway] {
            #expect(unit.split(separator: "\n").filter { $0.hasPrefix("ExecStart=") }.count == 1)
        }
    }

    @Test func systemdTargetRefusesAPasswordInTheStoreURLAndReplicasWithoutAStore() throws {
        #expect(throws: (any Error).self) {
            try InstallCommand.parse([
                "--target", "systemd", "--cluster-name", "prod", "--replica", "10.0.0.1:8086",
                "--store", "postgres://starling:secret@db/starling",
            ])
        }
        #expect(throws: (any Error).self) {
            try InstallCommand.parse(["--target", "systemd", "--cluster-name", "prod", "--replica", "10.0.0.1:8086", "--replica", "10.0.0.2:8086"])
        }
        #expect(throws: (any Error).self) { try InstallCommand.parse(["--cluster-name", "prod"]) }
        _ = try InstallCommand.parse(["--target", "systemd", "--cluster-name", "prod", "--replica", "10.0.0.1:8086"])
    }

    @Test func addClusterWritesAContextWithEveryReplica() async throws {
        let dir = try CLITemporaryDirectory()
        defer { dir.cleanup() }
        // A controller's own API certificate, as a remote cluster's operator hands it out.
        _ = try ControllerCredentials.loadOrCreate(directory: dir.path + "/data", apiHost: "10.0.0.1", otherNames: ["10.0.0.2"])
        let ca = dir.path + "/data/api.crt"
        let token = try dir.write("starling-admin.abc\n", to: "admin-token")
        let config = dir.path + "/config"
        var command = try ConfigCommand.AddCluster.parse([
            "prod", "--server", "10.0.0.1:8086,10.0.0.2:8086", "--ca-file", ca, "--token-file", token, "--config", config,
        ])
        try await command.run()
        let resolved = try ContextOptions.parse(["--config", config]).resolve(environment: [:])
        #expect(resolved.replicas.map(\.description) == ["10.0.0.1:8086", "10.0.0.2:8086"])
        #expect(resolved.clusterName == "prod")
        #expect(resolved.token == "starling-admin.abc")
        #expect(try CLITemporaryDirectory.mode(of: config) == 0o600)

        let notACert = try dir.write("hello", to: "bad.crt")
        command = try ConfigCommand.AddCluster.parse(["x", "--server", "10.0.0.1:8086", "--ca-file", notACert, "--token-file", token, "--config", config])
        await #expect(throws: CLIError.self) { try await command.run() }
        #expect(throws: (any Error).self) {
            try ConfigCommand.AddCluster.parse(["x", "--server", "10.0.0.1", "--ca-file", ca, "--token-file", token])
        }
    }
}
