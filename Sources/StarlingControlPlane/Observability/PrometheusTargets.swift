import StarlingCore
import StarlingMulticluster

/// Prometheus HTTP service discovery (`http_sd_configs`): every admin endpoint of this cluster
/// — each registered workload's proxy, the controller itself and the gateways that run as
/// processes of their own — with the labels `viz stat` groups by. A gateway hosted by the
/// controller (`--gateway hosted`, the default) shares its metrics registry, so its series come
/// with the controller's target and its probe port is not listed (that would count them twice).
/// Served by the controller's admin server at ``path``, built from the destination index on each
/// request (no store read).
///
/// The labels are few and bounded (docs/observability.md): `cluster`, `component`
/// (`proxy`, `controller`, `gateway`), `namespace`, `workload`, `service_account`, the workload's mesh
/// `identity`, and its `app` label when it has one. Workload labels are not copied wholesale: a label an
/// operator adds must not become a Prometheus series dimension by accident.
enum PrometheusTargets {
    static let path = "/prometheus/targets"

    struct Group {
        var target: String
        var labels: [(String, String)]
    }

    /// The target groups of `snapshot`, in a stable order: the controller, the `otherReplicas`
    /// (admin servers of the controller replicas sharing its store, each with the gateway it
    /// hosts), the `gateways` (probe endpoints of `starling gateway` processes), then the
    /// workloads by namespace and name (those registered with an admin port).
    static func groups(
        _ snapshot: DestinationIndex.Snapshot, cluster: String, controllerAdmin: String, otherReplicas: [String] = [],
        gateways: [String] = []
    ) -> [Group] {
        var groups = ([controllerAdmin] + otherReplicas).map {
            Group(target: $0, labels: [("cluster", cluster), ("component", "controller")])
        }
        for gateway in gateways {
            groups.append(
                Group(
                    target: gateway,
                    labels: [
                        ("cluster", cluster), ("component", "gateway"), ("namespace", MirrorLabels.namespace),
                        ("workload", MirrorLabels.gatewayServiceName),
                    ]))
        }
        for entry in ProxyAdminEndpoints.list(snapshot) {
            var labels = [
                ("cluster", cluster), ("component", "proxy"), ("namespace", entry.namespace), ("workload", entry.name),
                ("service_account", entry.spec.serviceAccount),
            ]
            if let identity = entry.spec.identity { labels.append(("identity", identity)) }
            if let app = entry.workload.metadata.labels["app"] { labels.append(("app", app)) }
            groups.append(Group(target: entry.address, labels: labels))
        }
        return groups
    }

    /// The HTTP SD document: a JSON array of `{"targets": [...], "labels": {...}}`.
    static func document(_ groups: [Group]) -> String {
        let entries = groups.map { group in
            JSONValue.object(
                JSONObject([
                    ("targets", .array([.string(group.target)])),
                    ("labels", .object(JSONObject(group.labels.map { ($0.0, JSONValue.string($0.1)) }))),
                ]))
        }
        return ResourceEncoder.jsonText(.array(entries)) + "\n"
    }
}
