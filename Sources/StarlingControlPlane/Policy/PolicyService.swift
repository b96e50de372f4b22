import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore

/// Streams each workload's inbound authorization (``InboundPolicy``) to its proxy: the whole
/// policy first, then again whenever a change in the store changes it.
struct PolicyService: Starling_V1_Policy.ServiceProtocol {
    let index: DestinationIndex
    let auth: Authenticator
    let logger: Logger

    func watchInbound(
        request: ServerRequest<Starling_V1_GetInboundPolicy>, context: ServerContext
    ) async throws -> StreamingServerResponse<Starling_V1_InboundPolicyUpdate> {
        let namespace = request.message.namespace
        let name = request.message.name
        // An empty name asks for the namespace's default (a proxy that registers no workload).
        guard ResourceNames.dns1123LabelProblem(namespace) == nil, name.isEmpty || ResourceNames.dns1123SubdomainProblem(name) == nil else {
            throw RPCError(code: .invalidArgument, message: "expected a workload's namespace and name, got \"\(namespace)/\(name)\"")
        }
        // Whose policy this is: a workload reads only its own namespace's, and only a Workload its
        // own identity registered counts as its own.
        var requester: String?
        switch try auth.authenticate(request.metadata) {
        case .admin: break
        case .workload(let ns, let serviceAccount, _) where ns == namespace:
            requester = MeshIdentity(namespace: ns, serviceAccount: serviceAccount, trustDomain: index.snapshot.trustDomain).dnsName
        case .workload(let ns, _, _):
            throw RPCError(code: .permissionDenied, message: "a workload of namespace \(ns) cannot read the policy of namespace \(namespace)")
        case .link:
            throw RPCError(code: .permissionDenied, message: "a link credential cannot read inbound policy")
        }
        // A stream re-opened on this replica never answers with a policy older than the one the
        // proxy applied.
        if request.message.resumeVersion > 0 {
            await index.catchUp(to: request.message.resumeVersion, within: DestinationService.catchUpLimit)
        }
        let stand = InboundPolicyCompiler.Standin(
            labels: request.message.labels,
            ports: request.message.ports.map {
                WorkloadPort(name: $0.name.isEmpty ? nil : $0.name, port: Int($0.port), appPort: $0.appPort == 0 ? nil : Int($0.appPort))
            })
        let changes = index.changes()
        let owner = requester
        return StreamingServerResponse { writer in
            // What was sent last, without its version: every store change wakes every stream,
            // and only a change of the policy itself is sent.
            var lastSent: Starling_V1_InboundPolicyUpdate?
            for await _ in changes {
                let snapshot = index.snapshot
                var update = snapshot.inboundPolicyUpdate(namespace: namespace, name: name, standin: stand, requester: owner)
                if update == lastSent { continue }
                lastSent = update
                update.version = snapshot.version
                try await writer.write(update)
            }
            return [:]
        }
    }
}

extension DestinationIndex.Snapshot {
    /// The inputs of inbound policy in one namespace.
    func policyResources(namespace: String) -> InboundPolicyCompiler.NamespaceResources {
        let byKind = policy[namespace] ?? [:]
        var resources = InboundPolicyCompiler.NamespaceResources(namespace: policy[namespace]?["Namespace"]?[namespace])
        resources.servers = Array((byKind["Server"] ?? [:]).values)
        resources.authorizationPolicies = Array((byKind["AuthorizationPolicy"] ?? [:]).values)
        resources.meshTLSAuthentications = Array((byKind["MeshTLSAuthentication"] ?? [:]).values)
        resources.networkAuthentications = Array((byKind["NetworkAuthentication"] ?? [:]).values)
        resources.httpRoutes = Array((routes[namespace] ?? [:]).values)
        return resources
    }

    /// The cluster's trust domain (MeshConfig), `cluster.local` before one is installed.
    var trustDomain: String { meshConfig.flatMap { try? MeshConfigSpec($0) }?.trustDomain ?? "cluster.local" }

    var policyCompiler: InboundPolicyCompiler {
        InboundPolicyCompiler(meshConfig: meshConfig.flatMap { try? MeshConfigSpec($0) })
    }

    /// The policy of workload `namespace/name`, as the Policy stream sends it. A workload not
    /// registered yet gets its namespace's default, so a proxy starting before its registration
    /// lands enforces at least that.
    /// - Parameters:
    ///   - standin: the labels and ports the proxy says its workload has, used while no Workload
    ///     of that name (registered by `requester`) exists.
    ///   - requester: the identity asking (nil for an admin): a Workload another identity
    ///     registered under that name is not its own.
    func inboundPolicyUpdate(
        namespace: String, name: String, standin: InboundPolicyCompiler.Standin = .init(), requester: String? = nil
    ) -> Starling_V1_InboundPolicyUpdate {
        var workload = name.isEmpty ? nil : workloads[namespace]?[name]
        // A Workload applied without an identity belongs to nobody in particular: it counts.
        if let requester, let found = workload, let owner = (try? WorkloadSpec(found))?.identity, owner != requester {
            workload = nil
        }
        let placeholder = Resource(
            name: name.isEmpty ? "unregistered" : name, namespace: namespace, labels: standin.labels,
            spec: WorkloadSpec(address: "0.0.0.0", ports: standin.ports))
        let (policy, problems) = policyCompiler.compile(workload: workload ?? placeholder, in: policyResources(namespace: namespace))
        var update = Starling_V1_InboundPolicyUpdate()
        update.policyJson = (try? InboundPolicyJSON.encode(policy)) ?? Data()
        update.problems = problems.map(\.description)
        update.workloadKnown = workload != nil
        return update
    }
}
