/// One kind of resource Starling knows: its names on the command line (`get svc`), the API
/// versions a document may use, and whether it lives in a namespace.
public struct ResourceKind: Sendable, Hashable, CustomStringConvertible {
    /// The canonical kind, as written in documents: `Service`, `TrafficSplit`.
    public let name: String
    /// The lowercase plural: `services`, `trafficsplits`.
    public let plural: String
    /// Short names for the CLI: `svc`, `ts`.
    public let shortNames: [String]
    /// Accepted `apiVersion`s; the first is preferred and used when Starling writes the kind.
    public let apiVersions: [String]
    /// False for cluster-scoped kinds (Namespace, MeshConfig), which take no namespace.
    public let namespaced: Bool

    public init(name: String, plural: String, shortNames: [String] = [], apiVersions: [String], namespaced: Bool) {
        self.name = name
        self.plural = plural
        self.shortNames = shortNames
        self.apiVersions = apiVersions
        self.namespaced = namespaced
    }

    /// The preferred `apiVersion`.
    public var preferredAPIVersion: String { apiVersions[0] }

    public var description: String { name }

    public static let namespace = ResourceKind(
        name: "Namespace", plural: "namespaces", shortNames: ["ns"], apiVersions: ["v1"], namespaced: false)
    public static let service = ResourceKind(
        name: "Service", plural: "services", shortNames: ["svc"], apiVersions: ["v1"], namespaced: true)
    public static let secret = ResourceKind(
        name: "Secret", plural: "secrets", apiVersions: ["v1"], namespaced: true)
    public static let workload = ResourceKind(
        name: "Workload", plural: "workloads", shortNames: ["wl"], apiVersions: ["starling.io/v1alpha1"],
        namespaced: true)
    public static let trafficSplit = ResourceKind(
        name: "TrafficSplit", plural: "trafficsplits", shortNames: ["ts"],
        apiVersions: [
            "split.smi-spec.io/v1alpha1", "split.smi-spec.io/v1alpha2", "split.smi-spec.io/v1alpha3",
            "split.smi-spec.io/v1alpha4",
        ],
        namespaced: true)
    public static let httpRoute = ResourceKind(
        name: "HTTPRoute", plural: "httproutes",
        apiVersions: ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"], namespaced: true)
    public static let link = ResourceKind(
        name: "Link", plural: "links", apiVersions: ["multicluster.starling.io/v1alpha1"], namespaced: true)
    public static let server = ResourceKind(
        name: "Server", plural: "servers", shortNames: ["srv"], apiVersions: ["policy.starling.io/v1beta1"], namespaced: true)
    public static let authorizationPolicy = ResourceKind(
        name: "AuthorizationPolicy", plural: "authorizationpolicies", shortNames: ["authzpolicy", "ap"],
        apiVersions: ["policy.starling.io/v1beta1", "policy.starling.io/v1alpha1"], namespaced: true)
    public static let meshTLSAuthentication = ResourceKind(
        name: "MeshTLSAuthentication", plural: "meshtlsauthentications", shortNames: ["meshtlsauthn"],
        apiVersions: ["policy.starling.io/v1beta1", "policy.starling.io/v1alpha1"], namespaced: true)
    public static let networkAuthentication = ResourceKind(
        name: "NetworkAuthentication", plural: "networkauthentications", shortNames: ["netauthn"],
        apiVersions: ["policy.starling.io/v1beta1", "policy.starling.io/v1alpha1"], namespaced: true)
    public static let meshConfig = ResourceKind(
        name: "MeshConfig", plural: "meshconfigs", apiVersions: ["config.starling.io/v1alpha1"], namespaced: false)

    /// Every kind, in the order `starling get` lists them.
    public static let all: [ResourceKind] = [
        .namespace, .service, .secret, .workload, .trafficSplit, .httpRoute, .link, .server, .authorizationPolicy,
        .meshTLSAuthentication, .networkAuthentication, .meshConfig,
    ]

    /// The kind named by `s`: the kind itself, its plural or a short name, in any case
    /// (`Service`, `service`, `services`, `SVC`). Nil when no kind has that name.
    public static func lookup(_ s: String) -> ResourceKind? {
        let lowered = s.lowercased()
        return all.first { kind in
            kind.name.lowercased() == lowered || kind.plural == lowered || kind.shortNames.contains(lowered)
        }
    }

    /// The kind whose canonical name is exactly `name`, as a document must spell it.
    public static func named(_ name: String) -> ResourceKind? {
        all.first { $0.name == name }
    }

    /// `Namespace, Service, ...` for error messages.
    static var knownKindsList: String { all.map(\.name).joined(separator: ", ") }
}
