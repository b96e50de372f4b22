import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import StarlingObservability
import StarlingGateway
import StarlingProxy
import SwiftProtobuf

/// Runs the multicluster gateway (``GatewaySidecar``, what `starling gateway` runs in a process of
/// its own) inside `starling controller` while the gateway service that `starling multicluster
/// install` applies exists, and stops it when it is deleted (`multicluster uninstall`). The
/// gateway gets its own identity (`starling-gateway.starling-multicluster...`) from this
/// controller and the other live replicas, and follows their destination API, like any proxy —
/// through the API, so the control-plane library never imports the data plane. The other
/// replicas matter when this one will not sign (its clock is off): another one does.
struct GatewaySupervisor: Sendable {
    var clusterName: String
    var apiHost: String
    var apiPort: Int
    var dataDirectory: String
    var logger: Logger
    var metrics: @Sendable () -> String
    /// True once this process's controller is stopping (its API going away is expected then).
    var controllerStopping: @Sendable () -> Bool = { false }
    /// The other live replicas' API addresses (same credentials), read when a gateway starts.
    var otherReplicas: @Sendable () -> [HostPort] = { [] }

    struct Desired: Equatable {
        var address: String
        var port: Int
        var probePort: Int
        var trustDomain: String
    }

    func run() async throws {
        let token = try String(contentsOfFile: (dataDirectory as NSString).appendingPathComponent("admin-token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let certificate = try String(contentsOfFile: (dataDirectory as NSString).appendingPathComponent("api.crt"), encoding: .utf8)
        let context = ResolvedContext(
            name: clusterName, clusterName: clusterName, serverHost: apiHost, serverPort: apiPort, adminServer: nil,
            caPEM: certificate, token: token, configPath: "")
        var poller = Poller(context: context, logger: logger, controllerStopping: controllerStopping)
        // Each gateway the store asks for runs as the child of a task group that lasts until the
        // store asks for something else, or the shutdown: cancelling the group stops it, and
        // leaving the group waits until it has drained. `next` is the store's latest answer
        // (`.some(nil)`: no gateway), nil at the shutdown.
        var next = await poller.change(from: nil)
        while let wanted = next {
            guard let desired = wanted else {
                next = await poller.change(from: nil)
                continue
            }
            let controller = ControllerAPI(
                host: apiHost, port: apiPort, certificatePEM: certificate, token: token,
                replicas: [HostPort(host: apiHost, port: apiPort)] + otherReplicas())
            next = await withTaskGroup(of: Void.self) { group in
                group.addTask { await serve(desired, controller: controller) }
                let change = await poller.change(from: desired)
                group.cancelAll()
                await group.waitForAll()
                logger.notice("gateway stopped", metadata: ["gateway": "\(desired.address):\(desired.port)"])
                return change
            }
        }
    }

    /// Polls the store for the gateway it asks for, saying once when the API stops answering and
    /// when it answers again. Only an answer changes the gateway: a failed poll (the API
    /// restarting, a timeout) leaves it serving as it is.
    private struct Poller {
        let context: ResolvedContext
        let logger: Logger
        let controllerStopping: @Sendable () -> Bool
        var unreachableSince: ContinuousClock.Instant?

        /// The next answer that differs from `current` (`.some(nil)`: multicluster is not
        /// installed); nil when the task is cancelled.
        mutating func change(from current: Desired?) async -> Desired?? {
            while !Task.isCancelled {
                if let answer = await poll(), answer != current { return answer }
                // Soon after `multicluster install` the gateway should be up: poll often until it runs.
                do { try await Task.sleep(for: current == nil ? .milliseconds(500) : .seconds(2)) } catch { return nil }
            }
            return nil
        }

        /// What the store asks for; nil when the API could not say.
        private mutating func poll() async -> Desired?? {
            let context = self.context
            do {
                let answer = try await ControllerClient.with(context, timeout: .seconds(5)) { client in
                    try await GatewaySupervisor.desired(client, context: context)
                }
                if let since = unreachableSince {
                    logger.notice("gateway supervisor reaches the controller API again", metadata: ["after": "\(ContinuousClock.now - since)"])
                    unreachableSince = nil
                }
                return .some(answer)
            } catch {
                if !Task.isCancelled, !controllerStopping(), unreachableSince == nil {
                    unreachableSince = .now
                    logger.warning(
                        "gateway supervisor cannot read the gateway's resources; the gateway keeps its current state",
                        metadata: ["error": "\(error)"])
                }
                return nil
            }
        }
    }

    /// The gateway the store asks for: nil when multicluster is not installed (or the mesh has no
    /// identity yet). Throws when the API does not answer: that says nothing about the gateway.
    static func desired(_ client: ControllerClient, context: ResolvedContext) async throws -> Desired? {
        let service: Resource
        do {
            service = try ResourceDecoder.decodeStored(try await client.resources.get(.with {
                $0.kind = "Service"; $0.namespace = MirrorLabels.namespace; $0.name = MirrorLabels.gatewayServiceName
            }).resourceJson)
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
        let mesh: MeshConfigSpec
        do {
            mesh = try MeshConfigSpec(ResourceDecoder.decodeStored(try await client.resources.get(.with {
                $0.kind = "MeshConfig"; $0.name = "mesh"
            }).resourceJson))
        } catch let error as RPCError where error.code == .notFound {
            return nil  // no identity yet: nothing to serve with
        }
        let spec = try ServiceSpec(service)
        guard let address = servedAddress(
            listed: service.metadata.annotations[MirrorLabels.gatewayAddressAnnotation], ownHost: context.serverHost)
        else { return nil }
        return Desired(
            address: address,
            port: spec.port(named: "mc-gateway")?.port ?? 4143, probePort: spec.port(named: "mc-probe")?.port ?? 4191,
            trustDomain: mesh.trustDomain)
    }

    /// The address this replica serves the gateway on: its own API host when the gateway
    /// Service lists it (one gateway per replica), the only address listed (one gateway address
    /// for the cluster), or its own host when none is listed; nil when several others are listed
    /// (those replicas serve the gateway, this one does not).
    static func servedAddress(listed: String?, ownHost: String) -> String? {
        guard let listed else { return ownHost }
        let hosts = MirrorLabels.gatewayHosts(listed)
        if hosts.isEmpty || hosts.contains(ownHost) { return ownHost }
        if hosts.count == 1 { return hosts[0] }
        // A replica listening on every address (0.0.0.0, as systemd units run it) serves on the
        // listed address that is one of its host's own.
        if NetworkAddress.isWildcard(ownHost) { return hosts.first(where: LocalAddresses.isLocal) }
        return nil
    }

    private func serve(_ desired: Desired, controller: ControllerAPI) async {
        var logger = self.logger
        logger[metadataKey: "component"] = "gateway"
        let gateway = GatewaySidecar(
            controller: controller, trustDomain: desired.trustDomain, listenHost: desired.address, port: desired.port,
            probePort: desired.probePort, clusterName: clusterName, logger: logger, metrics: metrics)
        do {
            try await gateway.run()
        } catch where Task.isCancelled {
        } catch {
            logger.error("gateway failed", metadata: ["error": "\(error)"])
        }
    }
}
