import StarlingCore
import StarlingMulticluster

/// The admin endpoints of the registered workloads' proxies, from the destination index: what
/// Prometheus scrapes (``PrometheusTargets``) and what `viz tap` connects to (`TapTargets`).
/// A workload is listed when it was registered with its proxy's admin port.
enum ProxyAdminEndpoints {
    /// On a Workload: its proxy's admin port (set at registration).
    static let adminPortAnnotation = "observability.starling.io/admin-port"

    struct Entry {
        var namespace: String
        var name: String
        var workload: Resource
        var spec: WorkloadSpec
        /// `host:port` of the proxy's admin server.
        var address: String
    }

    /// By namespace, then name; only `namespace` when given.
    static func list(_ snapshot: DestinationIndex.Snapshot, namespace only: String? = nil) -> [Entry] {
        var entries: [Entry] = []
        for namespace in snapshot.workloads.keys.sorted() where only == nil || only == namespace {
            let workloads = snapshot.workloads[namespace] ?? [:]
            for name in workloads.keys.sorted() {
                guard let workload = workloads[name],
                    let port = workload.metadata.annotations[adminPortAnnotation].flatMap(Int.init),
                    let spec = try? WorkloadSpec(workload)
                else { continue }
                entries.append(
                    Entry(
                        namespace: namespace, name: name, workload: workload, spec: spec,
                        address: NetworkAddress.joinHostPort(spec.address, port)))
            }
        }
        return entries
    }

    /// The probe (admin) endpoint, which serves the tap, of each multicluster gateway when the
    /// gateway is installed: one per address its Service lists (one per replica), or
    /// `defaultHost` when it lists none (none without one).
    static func gateways(_ snapshot: DestinationIndex.Snapshot, defaultHost: String?) -> [String] {
        guard let service = snapshot.services[MirrorLabels.namespace]?[MirrorLabels.gatewayServiceName],
            let spec = try? ServiceSpec(service), let probe = spec.port(named: "mc-probe")
        else { return [] }
        let listed = service.metadata.annotations[MirrorLabels.gatewayAddressAnnotation].map(MirrorLabels.gatewayHosts) ?? []
        let hosts = listed.isEmpty ? (defaultHost.map { [$0] } ?? []) : listed
        return hosts.map { NetworkAddress.joinHostPort($0, probe.port) }
    }
}
