/// One port a Workload serves.
public struct WorkloadPort: Sendable, Hashable {
    public var name: String?
    /// The port the workload's proxy accepts meshed traffic for, 1–65535.
    public var port: Int
    /// The port the application itself listens on, when it differs from `port`.
    public var appPort: Int?
    /// An application protocol hint, e.g. `http`, `opaque`.
    public var `protocol`: String?

    public init(name: String? = nil, port: Int, appPort: Int? = nil, protocol: String? = nil) {
        self.name = name
        self.port = port
        self.appPort = appPort
        self.protocol = `protocol`
    }
}

/// The spec of a `Workload`: what a proxy registers about the instance it fronts.
public struct WorkloadSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .workload }

    /// The instance's IPv4 or IPv6 address.
    public var address: String
    public var ports: [WorkloadPort]
    /// The service account the workload runs as (default `default`).
    public var serviceAccount: String
    /// The workload's mesh identity in DNS form (`SA.NS.serviceaccount.identity.starling.DOMAIN`).
    public var identity: String?
    /// False while the workload should get no traffic (default true).
    public var ready: Bool
    /// The cluster the workload runs in, for workloads reached through a gateway.
    public var cluster: String?

    public init(
        address: String, ports: [WorkloadPort] = [], serviceAccount: String = "default", identity: String? = nil,
        ready: Bool = true, cluster: String? = nil
    ) {
        self.address = address
        self.ports = ports
        self.serviceAccount = serviceAccount
        self.identity = identity
        self.ready = ready
        self.cluster = cluster
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        let address = try spec.requiredString("address")
        guard NetworkAddress.isIPAddress(address) else {
            throw spec.invalid("address", "expected an IPv4 or IPv6 address, got \(JSONTextWriter.quoted(address))")
        }
        var ports: [WorkloadPort] = []
        var seen = Set<Int>()
        for reader in try spec.objects("ports") ?? [] {
            guard let port = try reader.port("port") else { throw reader.missing("port") }
            guard seen.insert(port).inserted else { throw reader.invalid("port", "port \(port) is listed twice") }
            ports.append(
                WorkloadPort(
                    name: try reader.string("name"), port: port, appPort: try reader.port("appPort"),
                    protocol: try reader.string("protocol")))
        }
        let serviceAccount = try spec.string("serviceAccount") ?? "default"
        if let problem = ResourceNames.dns1123SubdomainProblem(serviceAccount) {
            throw spec.invalid("serviceAccount", "invalid service account \(JSONTextWriter.quoted(serviceAccount)): \(problem)")
        }
        let identity = try spec.string("identity")
        if let identity, MeshIdentity(dnsName: identity) == nil {
            throw spec.invalid(
                "identity",
                "expected a mesh identity like SA.NS.serviceaccount.identity.starling.cluster.local, got \(JSONTextWriter.quoted(identity))")
        }
        let cluster = try spec.string("cluster")
        if let cluster, let problem = ResourceNames.dns1123LabelProblem(cluster) {
            throw spec.invalid("cluster", "invalid cluster name \(JSONTextWriter.quoted(cluster)): \(problem)")
        }
        self.init(
            address: address, ports: ports, serviceAccount: serviceAccount, identity: identity,
            ready: try spec.bool("ready") ?? true, cluster: cluster)
    }

    /// `identity` parsed.
    public var meshIdentity: MeshIdentity? { identity.flatMap { MeshIdentity(dnsName: $0) } }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["address"] = .string(address)
        spec["ports"] = .array(
            ports.map { p in
                var o = JSONObject()
                if let name = p.name { o["name"] = .string(name) }
                o["port"] = .int(Int64(p.port))
                if let app = p.appPort { o["appPort"] = .int(Int64(app)) }
                if let proto = p.protocol { o["protocol"] = .string(proto) }
                return .object(o)
            })
        spec["serviceAccount"] = .string(serviceAccount)
        if let identity { spec["identity"] = .string(identity) }
        spec["ready"] = .bool(ready)
        if let cluster { spec["cluster"] = .string(cluster) }
        return JSONObject([("spec", .object(spec))])
    }
}
