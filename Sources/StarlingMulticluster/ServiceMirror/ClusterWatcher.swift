import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// The service mirror of one Link: lists the remote cluster's exported services with the link
/// credential, applies the mirrors, then follows the remote watch. Any failure (remote down,
/// credential refused, history compacted) ends in a fresh list and full resync after a backoff,
/// so a restart of either controller converges without duplicates or leftovers.
struct ClusterWatcher: Sendable {
    var link: LinkSpec
    var token: String
    var remoteCertificatePEM: String
    var store: any ResourceStore
    var registry: MulticlusterRegistry
    var logger: Logger

    var reconciler: MirrorReconciler {
        MirrorReconciler(
            cluster: link.targetClusterName, clusterDomain: link.targetClusterDomain,
            gatewayAddresses: link.gatewayAddresses, gatewayPort: link.gatewayPort,
            gatewayIdentity: link.gatewayIdentity, selector: link.selector)
    }

    func run() async {
        var backoff = Duration.milliseconds(500)
        while !Task.isCancelled {
            do {
                try await syncAndFollow()
                backoff = .milliseconds(500)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                let message = Self.describe(error)
                registry.update(link.targetClusterName) { $0.mirrorState = "error: \(message)" }
                logger.warning("service mirror lost the remote cluster; retrying", metadata: ["cluster": "\(link.targetClusterName)", "error": "\(message)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? RPCError { return "\(e.code): \(e.message)" }
        return "\(error)"
    }

    private func syncAndFollow() async throws {
        let transport = try RemoteAPI.transport(link, certificatePEM: remoteCertificatePEM)
        try await withGRPCClient(transport: transport) { client in
            let resources = Starling_V1_Resources.Client(wrapping: client)
            var metadata = Metadata()
            metadata.addString("Bearer \(token)", forKey: "authorization")
            let options = CallOptions.defaults
            var listRequest = Starling_V1_ListRequest()
            listRequest.kind = "Service"
            listRequest.allNamespaces = true
            listRequest.labelSelector = link.selector.description
            let list = try await resources.list(listRequest, metadata: metadata, options: withTimeout(options))
            let remote = try list.resourcesJson.map { json throws(ResourceError) in try ResourceDecoder.decodeStored(json) }
            let local = try await store.list(kind: "Service", namespace: nil, selector: LabelSelector(matchLabels: [
                MirrorLabels.mirroredService: "true", MirrorLabels.clusterName: link.targetClusterName,
            ]))
            let plan = reconciler.plan(remote: remote, local: local)
            try await execute(plan)
            registry.update(link.targetClusterName) {
                $0.mirrorState = "running"
                $0.lastSync = Date()
                $0.mirroredServices = remote.filter { link.selector.matches($0.metadata.labels) }.count
            }
            if !plan.isEmpty {
                logger.info("service mirror resynced", metadata: ["cluster": "\(link.targetClusterName)", "applied": "\(plan.apply.count)", "deleted": "\(plan.delete.count)"])
            }
            var watchRequest = Starling_V1_WatchRequest()
            watchRequest.kinds = ["Service"]
            watchRequest.fromVersion = list.version
            try await resources.watch(watchRequest, metadata: metadata) { response in
                for try await message in response.messages {
                    let resource = try ResourceDecoder.decodeStored(message.resourceJson)
                    let kind = WatchEvent.Kind(rawValue: message.type) ?? .modified
                    let mirrorKey = ResourceKey(kind: "Service", namespace: resource.metadata.namespace, name: MirrorLabels.mirrorName(service: resource.metadata.name, cluster: link.targetClusterName))
                    let current = try await store.get(mirrorKey)
                    let plan = reconciler.plan(event: kind, remote: resource, local: current)
                    try await execute(plan)
                    let count = try await store.list(kind: "Service", namespace: nil, selector: LabelSelector(matchLabels: [
                        MirrorLabels.mirroredService: "true", MirrorLabels.clusterName: link.targetClusterName,
                    ])).count
                    registry.update(link.targetClusterName) {
                        $0.lastSync = Date()
                        $0.mirroredServices = count
                    }
                }
            }
            throw MirrorError("the remote watch ended")
        }
    }

    private func withTimeout(_ options: CallOptions) -> CallOptions {
        var o = options
        o.timeout = .seconds(10)
        return o
    }

    private func execute(_ plan: MirrorReconciler.Plan) async throws {
        if !plan.apply.isEmpty {
            var toApply = plan.apply
            for ns in Set(plan.apply.compactMap(\.metadata.namespace)).sorted() {
                if try await store.get(ResourceKey(kind: "Namespace", namespace: nil, name: ns)) == nil {
                    toApply.insert(Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: ns)), at: 0)
                }
            }
            _ = try await store.apply(toApply)
            for r in plan.apply {
                logger.info("mirror updated", metadata: ["mirror": "\(r.metadata.namespace ?? "")/\(r.metadata.name)"])
            }
        }
        for key in plan.delete {
            if try await store.delete(key) != nil {
                logger.info("mirror removed", metadata: ["mirror": "\(key)"])
            }
        }
    }
}

struct MirrorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
