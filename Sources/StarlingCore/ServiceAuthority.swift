/// The authority of a mesh service as applications and proxies name it: `svc.ns`, `svc.ns.svc`
/// or `svc.ns.svc.CLUSTER_DOMAIN`, each optionally with `:port` and a trailing dot. The
/// controller parses it to answer the destination API; proxies key their discovery streams by
/// ``key(_:clusterDomain:)``, so every spelling of one service shares one stream.
public struct ServiceAuthority: Sendable, Hashable, CustomStringConvertible {
    public var service: String
    public var namespace: String
    public var port: Int?

    public init(service: String, namespace: String, port: Int?) {
        self.service = service
        self.namespace = namespace
        self.port = port
    }

    /// Parses a service authority; nil for any other name, or a port that is not 1…65535.
    public init?(_ text: String, clusterDomain: String = "cluster.local") {
        guard let parts = HostPort.split(text[...]), !parts.bracketed else { return nil }
        var host = parts.host
        var port: Int?
        if let portText = parts.port {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard let (service, namespace) = Self.labels(of: host, clusterDomain: clusterDomain) else { return nil }
        self.init(service: String(service), namespace: String(namespace), port: port)
    }

    /// `svc.ns.svc.CLUSTER_DOMAIN[:port]`
    public func fullyQualified(clusterDomain: String = "cluster.local") -> String {
        "\(service).\(namespace).svc.\(clusterDomain)" + (port.map { ":\($0)" } ?? "")
    }

    public var description: String { fullyQualified() }

    /// The one cache key of an authority: `svc.ns.svc.CLUSTER_DOMAIN:PORT` for a service
    /// authority in any spelling and case. An authority without a port keeps having none, and a
    /// name that is not a service authority (`example.com:80`) is kept as given (lower-cased,
    /// trailing dot dropped).
    public static func key(_ authority: String, clusterDomain: String = "cluster.local") -> String {
        let domain = clusterDomain.lowercased()
        var host = Substring(authority.lowercased())
        var port: Substring?
        if let parts = HostPort.split(host), !parts.bracketed, let digits = parts.port, !digits.isEmpty,
            digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber)
        {
            port = digits
            host = parts.host
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        let name = labels(of: host, clusterDomain: domain).map { "\($0).\($1).svc.\(domain)" } ?? String(host)
        return port.map { "\(name):\($0)" } ?? name
    }

    /// The service and namespace of `host` (no port, no trailing dot), if it names a service.
    private static func labels(of host: Substring, clusterDomain: String) -> (Substring, Substring)? {
        var labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let suffix: [Substring] = ["svc"] + clusterDomain.split(separator: ".")
        if labels.count == 2 + suffix.count, Array(labels.suffix(suffix.count)) == suffix {
            labels.removeLast(suffix.count)
        } else if labels.count == 3, labels[2] == "svc" {
            labels.removeLast()
        }
        guard labels.count == 2, !labels[0].isEmpty, !labels[1].isEmpty else { return nil }
        return (labels[0], labels[1])
    }
}
