/// How the service mirror probes a linked cluster's gateway.
public struct LinkProbeSpec: Sendable, Hashable {
    /// HTTP path on the gateway's probe port (default `/ready`).
    public var path: String
    /// The gateway's probe port (default 4191).
    public var port: Int
    /// Time between probes (default 3 s); written as a Go duration (`3s`).
    public var period: Duration

    public init(path: String = "/ready", port: Int = 4191, period: Duration = .seconds(3)) {
        self.path = path
        self.port = port
        self.period = period
    }
}

/// The spec of a `Link` (`multicluster.starling.io/v1alpha1`): how this cluster reaches a
/// remote one — its API for watching exported services, and its gateway for traffic.
public struct LinkSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .link }

    /// The remote cluster's name; mirrors are named `SERVICE-NAME`.
    public var targetClusterName: String
    /// The remote cluster's DNS domain (default `cluster.local`).
    public var targetClusterDomain: String
    /// The remote controller's API, `host:port`, or every replica's: `A:8086,B:8086,C:8086`.
    public var apiAddress: String
    /// Every replica of the remote API that `apiAddress` names.
    public var apiEndpoints: [HostPort] { HostPort.list(parsing: apiAddress) ?? [] }
    /// The Secret (in the Link's namespace) holding the credentials for the remote API.
    public var credentialsSecret: String
    /// The remote cluster's gateways (IPs or DNS names), one per controller replica or gateway
    /// process; never empty. Callers balance between the live ones and fail over.
    public var gatewayAddresses: [String]
    /// The first gateway address.
    public var gatewayAddress: String { gatewayAddresses[0] }
    /// Every gateway as `host:port`: how probes, the registry and mirrors name one gateway.
    public var gatewayEndpoints: [String] {
        gatewayAddresses.map { NetworkAddress.joinHostPort($0, gatewayPort) }
    }
    /// The remote gateways' port (default 4143).
    public var gatewayPort: Int
    /// The remote gateway's mesh identity (DNS form); the TLS peer must present it.
    public var gatewayIdentity: String
    public var probeSpec: LinkProbeSpec
    /// Which remote services are exported (default `mirror.starling.io/exported=true`).
    public var selector: LabelSelector

    /// The label that marks a service for export.
    public static let defaultSelector = LabelSelector(matchLabels: ["mirror.starling.io/exported": "true"])

    public init(
        targetClusterName: String, targetClusterDomain: String = "cluster.local", apiAddress: String,
        credentialsSecret: String, gatewayAddresses: [String], gatewayPort: Int = 4143, gatewayIdentity: String,
        probeSpec: LinkProbeSpec = LinkProbeSpec(), selector: LabelSelector = LinkSpec.defaultSelector
    ) {
        self.targetClusterName = targetClusterName
        self.targetClusterDomain = targetClusterDomain
        self.apiAddress = apiAddress
        self.credentialsSecret = credentialsSecret
        precondition(!gatewayAddresses.isEmpty, "a Link names at least one gateway")
        self.gatewayAddresses = gatewayAddresses
        self.gatewayPort = gatewayPort
        self.gatewayIdentity = gatewayIdentity
        self.probeSpec = probeSpec
        self.selector = selector
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        let clusterName = try spec.requiredString("targetClusterName")
        if let problem = ResourceNames.dns1123LabelProblem(clusterName) {
            throw spec.invalid("targetClusterName", "invalid cluster name \(JSONTextWriter.quoted(clusterName)): \(problem)")
        }
        let domain = try spec.string("targetClusterDomain") ?? "cluster.local"
        if let problem = ResourceNames.dns1123SubdomainProblem(domain) {
            throw spec.invalid("targetClusterDomain", "invalid domain \(JSONTextWriter.quoted(domain)): \(problem)")
        }
        let apiAddress = try spec.requiredString("apiAddress")
        guard let apiReplicas = HostPort.list(parsing: apiAddress) else {
            throw spec.invalid(
                "apiAddress",
                "expected host:port (e.g. 127.2.0.1:8086 or [fd00::1]:8086), or several separated by commas, got \(JSONTextWriter.quoted(apiAddress))")
        }
        // Several replicas are balanced as a list of IP addresses of one family; a DNS name
        // names every replica itself (it resolves to all of them).
        if apiReplicas.count > 1,
            !(apiReplicas.allSatisfy { NetworkAddress.isIPv4($0.host) } || apiReplicas.allSatisfy { NetworkAddress.isIPv6($0.host) })
        {
            throw spec.invalid(
                "apiAddress",
                "several replicas must be IP addresses of one family (give one DNS name that resolves to every replica instead), got \(JSONTextWriter.quoted(apiAddress))")
        }
        // `credentialsSecret: NAME` or `credentialsSecret: {name: NAME}`.
        let secret: String
        switch spec.value("credentialsSecret") {
        case .object?:
            let reader = try spec.requiredObject("credentialsSecret")
            secret = try reader.requiredString("name")
        default:
            secret = try spec.requiredString("credentialsSecret")
        }
        if let problem = ResourceNames.dns1123SubdomainProblem(secret) {
            throw spec.invalid("credentialsSecret", "invalid secret name \(JSONTextWriter.quoted(secret)): \(problem)")
        }
        // `gatewayAddress: HOST` (one gateway) or `gatewayAddresses: [HOST, …]` (one per replica).
        let gatewayAddresses: [String]
        if let listed = try spec.strings("gatewayAddresses") {
            gatewayAddresses = listed
            if listed.isEmpty {
                throw spec.invalid("gatewayAddresses", "must name at least one gateway address")
            }
        } else {
            gatewayAddresses = [try spec.requiredString("gatewayAddress")]
        }
        for (i, address) in gatewayAddresses.enumerated() where !NetworkAddress.isHost(address) {
            let message = "expected an IP address or DNS name, got \(JSONTextWriter.quoted(address))"
            if spec.value("gatewayAddresses") == nil { throw spec.invalid("gatewayAddress", message) }
            throw ResourceError(.invalidValue, message, fieldPath: FieldPath.index(spec.at("gatewayAddresses"), i))
        }
        let gatewayIdentity = try spec.requiredString("gatewayIdentity")
        guard MeshIdentity(dnsName: gatewayIdentity) != nil else {
            throw spec.invalid(
                "gatewayIdentity",
                "expected a mesh identity like SA.NS.serviceaccount.identity.starling.cluster.local, got \(JSONTextWriter.quoted(gatewayIdentity))")
        }
        var probe = LinkProbeSpec()
        if let reader = try spec.object("probeSpec") {
            probe.path = try reader.string("path") ?? probe.path
            guard probe.path.hasPrefix("/") else {
                throw reader.invalid("path", "expected an absolute path starting with '/', got \(JSONTextWriter.quoted(probe.path))")
            }
            probe.port = try reader.port("port") ?? probe.port
            if let text = try reader.string("period") {
                do {
                    probe.period = try GoDuration.parse(text)
                } catch {
                    throw ResourceError(error.code, error.message, fieldPath: reader.at("period"))
                }
                guard probe.period > .zero else {
                    throw reader.invalid("period", "must be positive, got \(JSONTextWriter.quoted(text))")
                }
            }
        }
        var selector = Self.defaultSelector
        if let reader = try spec.object("selector") {
            selector = try LabelSelector(reading: reader)
        }
        self.init(
            targetClusterName: clusterName, targetClusterDomain: domain, apiAddress: apiAddress,
            credentialsSecret: secret, gatewayAddresses: gatewayAddresses, gatewayPort: try spec.port("gatewayPort") ?? 4143,
            gatewayIdentity: gatewayIdentity, probeSpec: probe, selector: selector)
    }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["targetClusterName"] = .string(targetClusterName)
        spec["targetClusterDomain"] = .string(targetClusterDomain)
        spec["apiAddress"] = .string(apiAddress)
        spec["credentialsSecret"] = .string(credentialsSecret)
        spec["gatewayAddress"] = .string(gatewayAddress)
        if gatewayAddresses.count > 1 {
            spec["gatewayAddresses"] = .array(gatewayAddresses.map { .string($0) })
        }
        spec["gatewayPort"] = .int(Int64(gatewayPort))
        spec["gatewayIdentity"] = .string(gatewayIdentity)
        spec["probeSpec"] = .object(
            JSONObject([
                ("path", .string(probeSpec.path)), ("port", .int(Int64(probeSpec.port))),
                ("period", .string(GoDuration.format(probeSpec.period))),
            ]))
        spec["selector"] = .object(selector.kubernetesJSON)
        return JSONObject([("spec", .object(spec))])
    }
}
