import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import SwiftProtobuf

/// `starling multicluster install|uninstall|link|unlink|gateways`.
struct MulticlusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "multicluster", abstract: "Link clusters through authenticated gateways.",
        subcommands: [Install.self, Uninstall.self, Link.self, Unlink.self, Gateways.self])


    /// The documents that turn the gateway on.
    static func gatewayResources(address: String, port: Int, probePort: Int) -> [Resource] {
        let namespace = Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: MirrorLabels.namespace))
        let service = Resource(
            name: MirrorLabels.gatewayServiceName, namespace: MirrorLabels.namespace,
            labels: ["app": MirrorLabels.gatewayServiceName, "starling.io/control-plane-component": "gateway"],
            annotations: [MirrorLabels.gatewayAddressAnnotation: address],
            spec: ServiceSpec(ports: [
                ServicePort(name: "mc-gateway", port: port),
                ServicePort(name: "mc-probe", port: probePort),
            ]))
        return [namespace, service]
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the gateway's resources for `starling apply -f -`; the controller then runs the gateway.")

        @OptionGroup var context: ContextOptions

        @Option(help: ArgumentHelp(
            "Addresses gateways listen on, comma-separated (default: every controller replica's address in the context).",
            discussion: "Each replica serves the gateway on the address that is its own, or on the only one given."))
        var gatewayAddress: String?

        @Option var gatewayPort: Int = 4143
        @Option var probePort: Int = 4191

        @Option(name: .shortAndLong, help: "Output: yaml or json.")
        var output: OutputFormat = .yaml

        func run() async throws {
            let address: String
            if let gatewayAddress {
                let hosts = MirrorLabels.gatewayHosts(gatewayAddress)
                if let bad = hosts.first(where: { !NetworkAddress.isHost($0) }) {
                    throw ValidationError("--gateway-address: \"\(bad)\" is not an IP address or DNS name")
                }
                address = hosts.joined(separator: ",")
            } else {
                var hosts: [String] = []
                for replica in try context.resolve().replicas where !hosts.contains(replica.host) { hosts.append(replica.host) }
                address = hosts.joined(separator: ",")
            }
            let resources = MulticlusterCommand.gatewayResources(address: address, port: gatewayPort, probePort: probePort)
            print(output == .json ? ResourceEncoder.json(resources) : ResourceEncoder.yaml(resources), terminator: output == .json ? "\n" : "")
        }
    }

    struct Uninstall: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop and remove the gateway.")

        @OptionGroup var context: ContextOptions

        func run() async throws {
            let resolved = try context.resolve()
            try await ControllerClient.with(resolved) { client in
                _ = try await client.resources.delete(.with {
                    $0.kind = "Service"
                    $0.namespace = MirrorLabels.namespace
                    $0.name = MirrorLabels.gatewayServiceName
                })
            }
            print("service/\(MirrorLabels.gatewayServiceName) deleted: the gateway stops")
        }
    }

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a Link to a remote cluster and its credential, for `starling apply -f -` on this cluster.",
            discussion: "This cluster is the current context (STARLING_CONFIG or ~/.starling/config); --config and --context name the REMOTE cluster.")

        @Option(help: "The remote cluster's name (the suffix of its mirrored services).")
        var clusterName: String

        @Option(name: .customLong("config"), help: "The remote cluster's credentials file (`starling cluster credentials`).")
        var remoteConfig: String?

        @Option(name: .customLong("context"), help: "A context of your config that points at the remote cluster.")
        var remoteContext: String?

        @Option(help: "How long the link credential is valid.")
        var credentialTTL: String = "720h"

        @Option(help: "Probe period of the remote gateway.")
        var probePeriod: String = "3s"

        @Option(help: "Selector of the remote services to mirror.")
        var selector: String = "mirror.starling.io/exported=true"

        @Option(name: .shortAndLong, help: "Output: yaml or json.")
        var output: OutputFormat = .yaml

        func validate() throws {
            guard (remoteConfig == nil) != (remoteContext == nil) else {
                throw ValidationError("give the remote cluster with --config FILE or --context NAME")
            }
            do { _ = try GoDuration.parse(credentialTTL); _ = try GoDuration.parse(probePeriod); _ = try LabelSelector.parse(selector) } catch {
                throw ValidationError(error.message)
            }
        }

        func run() async throws {
            let local = try ContextOptions.parse([]).resolve()
            let remoteArguments = remoteConfig.map { ["--config", $0] } ?? remoteContext.map { ["--context", $0] } ?? []
            let remote = try ContextOptions.parse(remoteArguments).resolve()
            let ttl = try GoDuration.seconds(credentialTTL)
            let clusterName = self.clusterName
            let localStatus = try await ControllerClient.with(local) { try await $0.mesh.status(.init()) }
            let linked = try await ControllerClient.with(remote) { client in
                let status = try await client.mesh.status(.init())
                let gateway: Resource
                do {
                    gateway = try ResourceDecoder.decodeStored(try await client.resources.get(.with {
                        $0.kind = "Service"; $0.namespace = MirrorLabels.namespace; $0.name = MirrorLabels.gatewayServiceName
                    }).resourceJson)
                } catch let error as RPCError where error.code == .notFound {
                    throw CLIError(
                        "multicluster is not installed in cluster \(status.clusterName)",
                        hint: "run `starling multicluster install | starling apply -f -` against it first")
                }
                let token = try await client.mesh.createToken(.with {
                    $0.namespace = MirrorLabels.namespace
                    $0.serviceAccount = localStatus.clusterName
                    $0.ttlSeconds = Int64(ttl)
                    $0.audience = "link"
                })
                return (status, gateway, token)
            }
            let (remoteStatus, gateway, token) = linked
            if remoteStatus.clusterName != clusterName {
                FileHandle.standardError.write(Data("warning: the remote controller calls itself \(remoteStatus.clusterName), not \(clusterName)\n".utf8))
            }
            guard !remoteStatus.trustAnchorsPem.isEmpty else {
                throw CLIError("the mesh is not installed in cluster \(remoteStatus.clusterName)", hint: "run `starling install ... | starling apply -f -` there")
            }
            if remoteStatus.trustAnchorsPem != localStatus.trustAnchorsPem {
                throw CLIError(
                    "clusters \(localStatus.clusterName) and \(remoteStatus.clusterName) do not share trust anchors",
                    hint: "install both with the same --identity-trust-anchors-file; gateways would refuse each other")
            }
            let gatewaySpec = try ServiceSpec(gateway)
            let trustDomain = localStatus.trustAnchorsPem.isEmpty ? "cluster.local" : (try? await ControllerClient.with(remote) { client in
                try MeshConfigSpec(ResourceDecoder.decodeStored(try await client.resources.get(.with { $0.kind = "MeshConfig"; $0.name = "mesh" }).resourceJson)).trustDomain
            }) ?? "cluster.local"
            let gatewayAddresses = MirrorLabels.gatewayHosts(
                gateway.metadata.annotations[MirrorLabels.gatewayAddressAnnotation] ?? remote.serverHost)
            let secretName = MirrorLabels.credentialsSecretName(cluster: clusterName)
            let secret = Resource(
                name: secretName, namespace: MirrorLabels.namespace,
                labels: [MirrorLabels.clusterName: clusterName],
                spec: SecretSpec(type: "multicluster.starling.io/link-credential", strings: [
                    "token": token.token, "ca.crt": remote.caPEM, "expires-at": "\(token.expiresAt)",
                    "trust-anchors.pem": remoteStatus.trustAnchorsPem,
                ]))
            let link = Resource(
                name: clusterName, namespace: MirrorLabels.namespace,
                spec: LinkSpec(
                    targetClusterName: clusterName, targetClusterDomain: "cluster.local",
                    apiAddress: remote.replicas.map(\.description).joined(separator: ","), credentialsSecret: secretName,
                    gatewayAddresses: gatewayAddresses.isEmpty ? [remote.serverHost] : gatewayAddresses, gatewayPort: gatewaySpec.port(named: "mc-gateway")?.port ?? 4143,
                    gatewayIdentity: MeshIdentity(namespace: MirrorLabels.namespace, serviceAccount: MirrorLabels.gatewayServiceAccount, trustDomain: trustDomain).dnsName,
                    probeSpec: LinkProbeSpec(path: "/ready", port: gatewaySpec.port(named: "mc-probe")?.port ?? 4191, period: try GoDuration.parse(probePeriod)),
                    selector: try LabelSelector.parse(selector)))
            let resources = [Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: MirrorLabels.namespace)), secret, link]
            print(output == .json ? ResourceEncoder.json(resources) : ResourceEncoder.yaml(resources), terminator: output == .json ? "\n" : "")
        }
    }

    struct Unlink: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a link, its credential and its mirrors.")

        @OptionGroup var context: ContextOptions

        @Option(help: "The linked cluster's name.")
        var clusterName: String

        func run() async throws {
            let resolved = try context.resolve()
            let name = clusterName
            try await ControllerClient.with(resolved) { client in
                _ = try await client.resources.delete(.with { $0.kind = "Link"; $0.namespace = MirrorLabels.namespace; $0.name = name })
                print("link \"\(name)\" deleted: its mirrors are removed")
                do {
                    _ = try await client.resources.delete(.with {
                        $0.kind = "Secret"; $0.namespace = MirrorLabels.namespace; $0.name = MirrorLabels.credentialsSecretName(cluster: name)
                    })
                    print("secret \"\(MirrorLabels.credentialsSecretName(cluster: name))\" deleted")
                } catch let error as RPCError where error.code == .notFound {}
            }
        }
    }

    struct Gateways: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Linked clusters' gateways: alive, mirrored services, probe latency.")

        @OptionGroup var context: ContextOptions

        @Option(name: .shortAndLong, help: "Output: json (default: a table).")
        var output: OutputFormat = .table

        struct Row: Codable {
            var cluster: String
            var alive: Bool
            var numServices: Int
            var latencyP50Ms: Double?
            var latencyP95Ms: Double?
            var latencyP99Ms: Double?
            var gateway: String
            var mirror: String
        }

        func run() async throws {
            let resolved = try context.resolve()
            let response = try await ControllerClient.with(resolved) { try await $0.mesh.gateways(.init()) }
            let rows = response.gateways.map { g in
                Row(cluster: g.cluster, alive: g.alive, numServices: Int(g.numServices),
                    latencyP50Ms: g.latencyP50Ms < 0 ? nil : g.latencyP50Ms, latencyP95Ms: g.latencyP95Ms < 0 ? nil : g.latencyP95Ms,
                    latencyP99Ms: g.latencyP99Ms < 0 ? nil : g.latencyP99Ms, gateway: g.gatewayAddress, mirror: g.mirrorState)
            }
            if output == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
                return
            }
            if rows.isEmpty {
                FileHandle.standardError.write(Data("No linked clusters.\n".utf8))
                return
            }
            // One row per gateway: a replicated cluster has one per controller replica.
            var table = Table(["CLUSTER", "ALIVE", "NUM_SVC", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "GATEWAY"])
            // Whole milliseconds as Linkerd prints them; a tenth under 10 ms (loopback and LAN
            // gateways answer in well under one).
            func ms(_ v: Double?, _ alive: Bool) -> String {
                guard alive, let v else { return "-" }
                return v < 10 ? String(format: "%.1fms", v) : "\(Int(v.rounded()))ms"
            }
            for r in rows {
                table.add([r.cluster, r.alive ? "True" : "False", "\(r.numServices)", ms(r.latencyP50Ms, r.alive), ms(r.latencyP95Ms, r.alive), ms(r.latencyP99Ms, r.alive), r.gateway])
            }
            print(table.render())
        }
    }
}
