import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import SwiftProtobuf

/// The checks of `starling check --multicluster`: each Link is valid; the remote API answers the
/// link credential; the credential is not about to expire; both clusters serve the same trust
/// anchors; the mirror loops run; each gateway is alive; each mirror belongs to a Link and has
/// endpoints.
struct MulticlusterChecks {
    struct Result {
        var name: String
        var status: String
        var message: String
        var hint: String?
    }

    let context: ResolvedContext

    func run() async -> [Result] {
        var results: [Result] = []
        func add(_ name: String, _ ok: Bool, _ message: String, _ hint: String? = nil, warning: Bool = false) {
            results.append(Result(name: name, status: ok ? "ok" : (warning ? "warning" : "error"), message: message, hint: ok ? nil : hint))
        }
        func add(contentsOf more: [Result]) { results += more }
        do {
            try await ControllerClient.with(context) { client in
                let links = try await client.resources.list(.with { $0.kind = "Link"; $0.allNamespaces = true }).resourcesJson
                    .map { try ResourceDecoder.decodeStored($0) }
                let status = try await client.mesh.status(.init())
                // One row per gateway; a replicated cluster has one gateway per replica.
                let gateways = Dictionary(grouping: try await client.mesh.gateways(.init()).gateways, by: \.cluster)
                if links.isEmpty {
                    add("links", false, "no Links: this cluster is not linked to any other",
                        "run `starling multicluster link --cluster-name NAME --config REMOTE | starling apply -f -`", warning: true)
                }
                var linkedClusters = Set<String>()
                for resource in links {
                    let name = resource.metadata.name
                    guard let link = try? LinkSpec(resource) else {
                        add("link-valid", false, "Link \(name) is invalid", "apply the output of `starling multicluster link` again")
                        continue
                    }
                    linkedClusters.insert(link.targetClusterName)
                    add("link-valid", true, "Link \(name) is valid (cluster \(link.targetClusterName))")
                    let secret = try? await client.resources.get(.with {
                        $0.kind = "Secret"; $0.namespace = resource.metadata.namespace ?? MirrorLabels.namespace; $0.name = link.credentialsSecret
                    })
                    guard let secretJSON = secret?.resourceJson, let spec = try? SecretSpec(ResourceDecoder.decodeStored(secretJSON)),
                        let token = spec.string("token"), let ca = spec.string("ca.crt")
                    else {
                        add("link-credential", false, "Link \(name): credentials secret \(link.credentialsSecret) is missing", "link again")
                        continue
                    }
                    let reach = await Self.remoteAnswers(link: link, token: token, caPEM: ca)
                    add("remote-api", reach == nil, reach.map { "cluster \(link.targetClusterName): remote API refused or unreachable: \($0)" }
                        ?? "cluster \(link.targetClusterName): remote API answers the link credential",
                        "check that \(link.apiAddress) is reachable and link again if the credential was revoked")
                    let linkGateways = gateways[link.targetClusterName] ?? []
                    if let expiry = spec.string("expires-at").flatMap(Double.init) {
                        add(contentsOf: Self.credentialChecks(
                            cluster: link.targetClusterName, expiresAt: expiry, now: Date().timeIntervalSince1970,
                            renewsAt: linkGateways.first.map { Double($0.credentialRenewsAt) } ?? 0,
                            renewalError: linkGateways.first?.credentialRenewalError ?? ""))
                    }
                    if let anchors = spec.string("trust-anchors.pem") {
                        add("trust-anchors", anchors == status.trustAnchorsPem,
                            anchors == status.trustAnchorsPem ? "cluster \(link.targetClusterName) serves the same trust anchors"
                                : "cluster \(link.targetClusterName) serves different trust anchors",
                            "install both clusters with the same --identity-trust-anchors-file, then link again")
                    }
                    let mirrorState = linkGateways.first?.mirrorState
                    add("mirror-loop", mirrorState == "running",
                        "cluster \(link.targetClusterName): service mirror \(mirrorState ?? "not running")",
                        "see the controller log; the mirror retries on its own")
                    let hint = "is `starling multicluster install` applied in \(link.targetClusterName) and its controller running?"
                    if linkGateways.isEmpty {
                        add("gateway-alive", false, "cluster \(link.targetClusterName): no gateway probed yet", hint)
                    }
                    // While one gateway answers, traffic flows: a dead one among several is a warning.
                    let anyAlive = linkGateways.contains { $0.alive }
                    for gateway in linkGateways {
                        add("gateway-alive", gateway.alive,
                            gateway.alive ? "cluster \(link.targetClusterName): gateway \(gateway.gatewayAddress) is alive"
                                : "cluster \(link.targetClusterName): gateway \(gateway.gatewayAddress) is not answering probes (\(gateway.lastProbeError.isEmpty ? "no probe yet" : gateway.lastProbeError))",
                            hint, warning: anyAlive)
                    }
                }
                let mirrors = try await client.resources.list(.with {
                    $0.kind = "Service"; $0.allNamespaces = true; $0.labelSelector = "\(MirrorLabels.mirroredService)=true"
                }).resourcesJson.map { try ResourceDecoder.decodeStored($0) }
                for mirror in mirrors {
                    let cluster = mirror.metadata.labels[MirrorLabels.clusterName] ?? ""
                    let name = "\(mirror.metadata.namespace ?? "default")/\(mirror.metadata.name)"
                    add("mirror-link", linkedClusters.contains(cluster), "mirror \(name) belongs to the Link of cluster \(cluster)",
                        "a mirror without a Link is a leftover: unlink/link again or delete it")
                    let has = await Self.hasEndpoints(client, mirror)
                    add("mirror-endpoints", has, has ? "mirror \(name) has endpoints" : "mirror \(name) has no endpoints",
                        "the gateway of \(cluster) may be dead: `starling multicluster gateways`")
                }
            }
        } catch {
            add("multicluster", false, "multicluster checks could not run: \(error)", "is the controller reachable? `starling check`")
        }
        return results
    }

    /// The link credential: valid, renewed on time by the controller (at two thirds of its
    /// lifetime), a failed renewal a warning while it is still valid, an expired one an error.
    static func credentialChecks(
        cluster: String, expiresAt: Double, now: Double, renewsAt: Double, renewalError: String
    ) -> [Result] {
        let left = expiresAt - now
        let relink = "link again: `starling multicluster link --cluster-name \(cluster) --config REMOTE | starling apply -f -`"
        guard left > 0 else {
            return [Result(name: "credential-expiry", status: "error",
                message: "cluster \(cluster): link credential expired \(Self.span(-left)) ago", hint: relink)]
        }
        var results = [Result(name: "credential-expiry", status: "ok",
            message: "cluster \(cluster): link credential valid for \(Self.span(left))"
                + (renewsAt > now ? ", renewed in \(Self.span(renewsAt - now))" : ""))]
        if !renewalError.isEmpty {
            results.append(Result(name: "credential-renewal", status: "warning",
                message: "cluster \(cluster): link credential renewal failed: \(renewalError); it expires in \(Self.span(left))",
                hint: "the controller retries; check that \(cluster)'s API is reachable, or " + relink))
        }
        return results
    }

    /// `12 days`, or Go's style under two days (`1h2m3s`).
    static func span(_ seconds: Double) -> String {
        seconds >= 2 * 86400 ? "\(Int(seconds / 86400)) days" : GoDuration.format(.seconds(Int64(seconds.rounded())))
    }

    static func hasEndpoints(_ client: ControllerClient, _ mirror: Resource) async -> Bool {
        let path = "\(mirror.metadata.name).\(mirror.metadata.namespace ?? "default").svc.cluster.local"
        return (try? await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await client.destination.get(.with { $0.path = path }) { response in
                    for try await update in response.messages {
                        if case .add(let set)? = update.update, !set.addrs.isEmpty { return true }
                        if case .noEndpoints? = update.update { return false }
                    }
                    return false
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(3))
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }) ?? false
    }

    /// Lists exported services from the remote API with the link credential; nil when it answers.
    static func remoteAnswers(link: LinkSpec, token: String, caPEM: String) async -> String? {
        let replicas = link.apiEndpoints
        guard !replicas.isEmpty else {
            return "apiAddress \(link.apiAddress) is not HOST:PORT[,HOST:PORT…]"
        }
        do {
            // Every replica, IPv4, IPv6 or a DNS name (this check took one IPv4 address only).
            let transport = try ControllerTransport.make(replicas: replicas, certificatePEM: caPEM)
            return try await withGRPCClient(transport: transport) { grpc in
                var metadata = Metadata()
                metadata.addString("Bearer \(token)", forKey: "authorization")
                var options = CallOptions.defaults
                options.timeout = .seconds(5)
                _ = try await Starling_V1_Resources.Client(wrapping: grpc).list(
                    .with { $0.kind = "Service"; $0.allNamespaces = true }, metadata: metadata, options: options)
                return nil
            }
        } catch let error as RPCError {
            return "\(error.code): \(error.message)"
        } catch {
            return "\(error)"
        }
    }
}
