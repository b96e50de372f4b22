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
        switch try auth.authenticate(request.metadata) {
        case .admin: break
        case .workload(let ns, _, _) where ns == namespace: break
        case .workload(let ns, _, _):
            throw RPCError(code: .permissionDenied, message: "a workload of namespace \(ns) cannot read the policy of namespace \(namespace)")
        case .link:
            throw RPCError(code: .permissionDenied, message: "a link credential cannot read inbound policy")
        }
        let changes = index.changes()
        return StreamingServerResponse { writer in
            var last: Starling_V1_InboundPolicyUpdate?
            for await _ in changes {
                let snapshot = index.snapshot
                var update = snapshot.inboundPolicyUpdate(namespace: namespace, name: name, labels: request.message.labels)
                update.version = last?.version ?? 0
                // Send only what changed: every store change wakes every stream.
                if var previous = last {
                    previous.version = 0
                    var candidate = update
                    candidate.version = 0
                    if previous == candidate { continue }
                }
                update.version = snapshot.version
                try await writer.write(update)
                last = update
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

    var policyCompiler: InboundPolicyCompiler {
        InboundPolicyCompiler(meshConfig: meshConfig.flatMap { try? MeshConfigSpec($0) })
    }

    /// The policy of workload `namespace/name`, as the Policy stream sends it. A workload not
    /// registered yet gets its namespace's default, so a proxy starting before its registration
    /// lands enforces at least that.
    func inboundPolicyUpdate(namespace: String, name: String, labels: [String: String] = [:]) -> Starling_V1_InboundPolicyUpdate {
        let workload = name.isEmpty ? nil : workloads[namespace]?[name]
        let placeholder = Resource(
            name: name.isEmpty ? "unregistered" : name, namespace: namespace, labels: labels, spec: WorkloadSpec(address: "0.0.0.0"))
        let (policy, problems) = policyCompiler.compile(workload: workload ?? placeholder, in: policyResources(namespace: namespace))
        var update = Starling_V1_InboundPolicyUpdate()
        update.policyJson = (try? InboundPolicyJSON.encode(policy)) ?? Data()
        update.problems = problems.map(\.description)
        update.workloadKnown = workload != nil
        return update
    }
}
