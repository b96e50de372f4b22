import GRPCCore
import StarlingAPI
import StarlingCore

/// The benchmark's own Service and Workloads in one namespace, applied and deleted through the
/// Resources API. Workload addresses are never dialled: only the controller sees traffic.
struct BenchWorkloads: Sendable {
    var namespace: String
    var service: String

    static let servicePort = 9898
    static let proxyPort = 4143

    /// `SERVICE.NAMESPACE.svc.cluster.local:9898`
    var authority: String { "\(service).\(namespace).svc.cluster.local:\(Self.servicePort)" }

    var serviceResource: Resource {
        Resource(name: service, namespace: namespace, spec: ServiceSpec(ports: [ServicePort(port: Self.servicePort)]))
    }

    func workload(_ name: String, address: String) -> Resource {
        Resource(
            name: name, namespace: namespace, labels: ["app": service],
            spec: WorkloadSpec(address: address, ports: [WorkloadPort(port: Self.proxyPort, appPort: Self.servicePort)]))
    }

    func apply(_ resources: Starling_V1_Resources.Client<some ClientTransport>, _ items: [Resource], source: String) async throws {
        var request = Starling_V1_ApplyRequest()
        request.resourcesJson = items.map(ResourceEncoder.compactJSON)
        request.source = source
        do {
            _ = try await resources.apply(request, options: ControllerConnections.unary())
        } catch let error as RPCError {
            let names = items.map { "\($0.kind.lowercased())/\($0.metadata.name)" }.joined(separator: ", ")
            throw BenchError("applying \(names) in namespace \(namespace) failed: \(error.message) (\(error.code))")
        }
    }

    /// Deletes a resource; returns false when it did not exist.
    @discardableResult
    func delete(_ resources: Starling_V1_Resources.Client<some ClientTransport>, kind: String = "Workload", _ name: String) async throws -> Bool {
        var request = Starling_V1_DeleteRequest()
        request.kind = kind
        request.namespace = namespace
        request.name = name
        do {
            _ = try await resources.delete(request, options: ControllerConnections.unary())
            return true
        } catch let error as RPCError where error.code == .notFound {
            return false
        } catch let error as RPCError {
            throw BenchError("deleting \(kind.lowercased())/\(name) in namespace \(namespace) failed: \(error.message) (\(error.code))")
        }
    }
}
