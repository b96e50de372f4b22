/// The labels and annotations of multicluster (DESIGN.md "Resources").
public enum MirrorLabels {
    /// On a service in the exporting cluster: mirror it into linked clusters.
    public static let exported = "mirror.starling.io/exported"
    /// On a mirror: marks it as a mirror.
    public static let mirroredService = "mirror.starling.io/mirrored-service"
    /// On a mirror: the cluster it mirrors.
    public static let clusterName = "mirror.starling.io/cluster-name"
    /// Annotations on a mirror: where its traffic goes.
    public static let remoteService = "mirror.starling.io/remote-svc-fq-name"
    public static let remoteResourceVersion = "mirror.starling.io/remote-resource-version"
    /// The linked cluster's gateway addresses, comma-separated (one per replica).
    public static let gatewayAddress = "mirror.starling.io/gateway-address"
    public static let gatewayPort = "mirror.starling.io/gateway-port"
    public static let gatewayIdentity = "mirror.starling.io/gateway-identity"

    /// The namespace of links, their credentials and the gateway.
    public static let namespace = "starling-multicluster"
    /// The gateway's service account (its identity is
    /// `starling-gateway.starling-multicluster.serviceaccount.identity.starling.TRUST_DOMAIN`).
    public static let gatewayServiceAccount = "starling-gateway"
    /// The gateway's Service in ``namespace`` (ports `mc-gateway` and `mc-probe`), and its
    /// annotation naming the addresses gateways listen on, comma-separated: each controller
    /// replica serves the gateway on the one that is its own (or on the only one).
    public static let gatewayServiceName = "starling-gateway"
    public static let gatewayAddressAnnotation = "multicluster.starling.io/gateway-address"

    /// The hosts of a comma-separated gateway address list (the gateway Service's annotation, a
    /// mirror's `gateway-address`), trimmed, empty entries dropped.
    public static func gatewayHosts(_ list: String) -> [String] {
        list.split(separator: ",").map { String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }
            .filter { !$0.isEmpty }
    }

    /// `NAME-CLUSTER`
    public static func mirrorName(service: String, cluster: String) -> String { "\(service)-\(cluster)" }

    /// The credentials secret of a link to `cluster`.
    public static func credentialsSecretName(cluster: String) -> String { "cluster-credentials-\(cluster)" }
}
