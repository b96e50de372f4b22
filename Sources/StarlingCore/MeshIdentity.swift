/// A workload identity (DESIGN.md "Identity and PKI"): a service account in a namespace of a trust
/// domain. Parsed at the edge; never passed around as a raw string.
public struct MeshIdentity: Sendable, Hashable, CustomStringConvertible {
    public var namespace: String
    public var serviceAccount: String
    public var trustDomain: String

    public init(namespace: String, serviceAccount: String, trustDomain: String = "cluster.local") {
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.trustDomain = trustDomain
    }

    /// `SA.NS.serviceaccount.identity.starling.TRUST_DOMAIN`
    public var dnsName: String { "\(serviceAccount).\(namespace).serviceaccount.identity.starling.\(trustDomain)" }
    /// `spiffe://TRUST_DOMAIN/ns/NS/sa/SA`
    public var spiffeURI: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }
    public var description: String { dnsName }

    /// Parses the DNS form; nil when `name` is not a mesh identity.
    public init?(dnsName name: String) {
        let marker = ".serviceaccount.identity.starling."
        guard let r = name.firstRange(of: marker) else { return nil }
        let head = name[..<r.lowerBound].split(separator: ".", omittingEmptySubsequences: false)
        let domain = String(name[r.upperBound...])
        guard head.count == 2, !head[0].isEmpty, !head[1].isEmpty, !domain.isEmpty else { return nil }
        self.init(namespace: String(head[1]), serviceAccount: String(head[0]), trustDomain: domain)
    }

    /// Parses the SPIFFE form; nil when `uri` is not one.
    public init?(spiffeURI uri: String) {
        guard uri.hasPrefix("spiffe://") else { return nil }
        let parts = uri.dropFirst("spiffe://".count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "ns", parts[3] == "sa", !parts[0].isEmpty, !parts[2].isEmpty,
            !parts[4].isEmpty
        else { return nil }
        self.init(namespace: String(parts[2]), serviceAccount: String(parts[4]), trustDomain: String(parts[0]))
    }
}
