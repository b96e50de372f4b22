/// Where the issuer's private key is kept.
public struct SecretReference: Sendable, Hashable {
    public var name: String
    public var namespace: String

    public init(name: String, namespace: String) {
        self.name = name
        self.namespace = namespace
    }
}

/// The identity issuer: an intermediate CA signed by a trust anchor.
public struct MeshIssuer: Sendable, Hashable {
    /// The issuer certificate (PEM).
    public var certificatePEM: String
    /// The Secret holding the issuer's private key.
    public var keySecret: SecretReference

    public init(certificatePEM: String, keySecret: SecretReference) {
        self.certificatePEM = certificatePEM
        self.keySecret = keySecret
    }
}

/// The mesh's identity settings.
public struct MeshIdentitySettings: Sendable, Hashable {
    /// The root certificates every cluster of the mesh trusts (PEM, one or more).
    public var trustAnchorsPEM: String
    public var issuer: MeshIssuer
    /// How long the workload certificates the issuer signs are valid (Linkerd's
    /// `issuanceLifetime`); proxies renew them before they expire. Default 24 h.
    public var issuanceLifetime: Duration

    public static let defaultIssuanceLifetime: Duration = .seconds(86400)
    /// Shorter lifetimes would have proxies renew more often than they can be served, and would
    /// not outlast the clock skew a replica may have before it stops signing (30 s).
    public static let minimumIssuanceLifetime: Duration = .seconds(60)

    public init(trustAnchorsPEM: String, issuer: MeshIssuer, issuanceLifetime: Duration = defaultIssuanceLifetime) {
        self.trustAnchorsPEM = trustAnchorsPEM
        self.issuer = issuer
        self.issuanceLifetime = issuanceLifetime
    }
}

/// The spec of the cluster-scoped `MeshConfig` (`config.starling.io/v1alpha1`): the cluster's
/// name, trust domain and identity issuer, written by `starling install`.
public struct MeshConfigSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .meshConfig }

    public var clusterName: String
    /// The identity trust domain (default `cluster.local`).
    public var trustDomain: String
    public var identity: MeshIdentitySettings
    /// The address other clusters use for this cluster's API (`host:port`), if published.
    public var apiAddress: String?
    /// The address of this cluster's gateway, if multicluster is installed.
    public var gatewayAddress: String?
    /// The cluster's default inbound policy (nil: `all-unauthenticated`); a namespace or a
    /// workload may set its own.
    public var defaultInboundPolicy: AccessPolicy?
    /// The networks `cluster-authenticated` admits callers from (nil: the private ranges and
    /// loopback, ``InboundPolicy/defaultClusterNetworks``).
    public var clusterNetworks: [IPNetwork]?

    public init(
        clusterName: String, trustDomain: String = "cluster.local", identity: MeshIdentitySettings,
        apiAddress: String? = nil, gatewayAddress: String? = nil, defaultInboundPolicy: AccessPolicy? = nil,
        clusterNetworks: [IPNetwork]? = nil
    ) {
        self.defaultInboundPolicy = defaultInboundPolicy
        self.clusterNetworks = clusterNetworks
        self.clusterName = clusterName
        self.trustDomain = trustDomain
        self.identity = identity
        self.apiAddress = apiAddress
        self.gatewayAddress = gatewayAddress
    }

    private static let certificateMarker = "-----BEGIN CERTIFICATE-----"

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        let clusterName = try spec.requiredString("clusterName")
        if let problem = ResourceNames.dns1123LabelProblem(clusterName) {
            throw spec.invalid("clusterName", "invalid cluster name \(JSONTextWriter.quoted(clusterName)): \(problem)")
        }
        let trustDomain = try spec.string("trustDomain") ?? "cluster.local"
        if let problem = ResourceNames.dns1123SubdomainProblem(trustDomain) {
            throw spec.invalid("trustDomain", "invalid trust domain \(JSONTextWriter.quoted(trustDomain)): \(problem)")
        }
        let identity = try spec.requiredObject("identity")
        let anchors = try identity.requiredString("trustAnchorsPEM")
        guard anchors.contains(Self.certificateMarker) else {
            throw identity.invalid("trustAnchorsPEM", "expected PEM certificates (\(Self.certificateMarker) ...)")
        }
        let issuer = try identity.requiredObject("issuer")
        let certificate = try issuer.requiredString("certificatePEM")
        guard certificate.contains(Self.certificateMarker) else {
            throw issuer.invalid("certificatePEM", "expected a PEM certificate (\(Self.certificateMarker) ...)")
        }
        let keySecret = try issuer.requiredObject("keySecret")
        let secretName = try keySecret.requiredString("name")
        if let problem = ResourceNames.dns1123SubdomainProblem(secretName) {
            throw keySecret.invalid("name", "invalid secret name \(JSONTextWriter.quoted(secretName)): \(problem)")
        }
        let secretNamespace = try keySecret.requiredString("namespace")
        if let problem = ResourceNames.dns1123LabelProblem(secretNamespace) {
            throw keySecret.invalid("namespace", "invalid namespace \(JSONTextWriter.quoted(secretNamespace)): \(problem)")
        }
        var lifetime = MeshIdentitySettings.defaultIssuanceLifetime
        if let text = try identity.string("issuanceLifetime") {
            do {
                lifetime = try GoDuration.parse(text)
            } catch {
                throw ResourceError(error.code, error.message, fieldPath: identity.at("issuanceLifetime"))
            }
            guard lifetime >= MeshIdentitySettings.minimumIssuanceLifetime else {
                throw identity.invalid(
                    "issuanceLifetime",
                    "must be at least \(GoDuration.format(MeshIdentitySettings.minimumIssuanceLifetime)), got \(JSONTextWriter.quoted(text))")
            }
        }
        let apiAddress = try spec.string("apiAddress")
        if let apiAddress, NetworkAddress.splitHostPort(apiAddress) == nil {
            throw spec.invalid("apiAddress", "expected host:port, got \(JSONTextWriter.quoted(apiAddress))")
        }
        let gatewayAddress = try spec.string("gatewayAddress")
        if let gatewayAddress, !NetworkAddress.isHost(gatewayAddress), NetworkAddress.splitHostPort(gatewayAddress) == nil {
            throw spec.invalid(
                "gatewayAddress", "expected an address or host:port, got \(JSONTextWriter.quoted(gatewayAddress))")
        }
        var defaultInboundPolicy: AccessPolicy?
        if let text = try spec.string("defaultInboundPolicy") {
            guard let parsed = AccessPolicy.parse(text) else {
                throw spec.invalid("defaultInboundPolicy", "expected one of \(AccessPolicy.acceptedList), got \(JSONTextWriter.quoted(text))")
            }
            defaultInboundPolicy = parsed
        }
        var clusterNetworks: [IPNetwork]?
        if let texts = try spec.strings("clusterNetworks") {
            clusterNetworks = []
            for (i, text) in texts.enumerated() {
                guard let network = IPNetwork(text) else {
                    throw ResourceError(
                        .invalidValue, "expected a CIDR such as 10.0.0.0/8, got \(JSONTextWriter.quoted(text))",
                        fieldPath: FieldPath.index(spec.at("clusterNetworks"), i))
                }
                clusterNetworks?.append(network)
            }
        }
        self.init(
            clusterName: clusterName, trustDomain: trustDomain,
            identity: MeshIdentitySettings(
                trustAnchorsPEM: anchors,
                issuer: MeshIssuer(
                    certificatePEM: certificate,
                    keySecret: SecretReference(name: secretName, namespace: secretNamespace)),
                issuanceLifetime: lifetime),
            apiAddress: apiAddress, gatewayAddress: gatewayAddress, defaultInboundPolicy: defaultInboundPolicy,
            clusterNetworks: clusterNetworks)
    }

    public var body: JSONObject {
        let keySecret = JSONObject([
            ("name", .string(identity.issuer.keySecret.name)), ("namespace", .string(identity.issuer.keySecret.namespace)),
        ])
        let issuer = JSONObject([
            ("certificatePEM", .string(identity.issuer.certificatePEM)), ("keySecret", .object(keySecret)),
        ])
        var spec = JSONObject()
        spec["clusterName"] = .string(clusterName)
        spec["trustDomain"] = .string(trustDomain)
        var identityObject = JSONObject([("trustAnchorsPEM", .string(identity.trustAnchorsPEM)), ("issuer", .object(issuer))])
        if identity.issuanceLifetime != MeshIdentitySettings.defaultIssuanceLifetime {
            identityObject["issuanceLifetime"] = .string(GoDuration.format(identity.issuanceLifetime))
        }
        spec["identity"] = .object(identityObject)
        if let apiAddress { spec["apiAddress"] = .string(apiAddress) }
        if let gatewayAddress { spec["gatewayAddress"] = .string(gatewayAddress) }
        if let defaultInboundPolicy { spec["defaultInboundPolicy"] = .string(defaultInboundPolicy.rawValue) }
        if let clusterNetworks { spec["clusterNetworks"] = .array(clusterNetworks.map { .string($0.description) }) }
        return JSONObject([("spec", .object(spec))])
    }
}
