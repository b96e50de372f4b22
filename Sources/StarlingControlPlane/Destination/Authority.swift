/// A service authority as proxies name it: `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`,
/// each optionally with `:port`.
struct Authority: Sendable, Hashable, CustomStringConvertible {
    var service: String
    var namespace: String
    var port: Int?

    init?(_ text: String, clusterDomain: String = "cluster.local") {
        var host = Substring(text)
        var port: Int?
        if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        var labels = host.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let suffix = ["svc"] + clusterDomain.split(separator: ".").map(String.init)
        if labels.count == 2 + suffix.count, Array(labels.suffix(suffix.count)) == suffix {
            labels.removeLast(suffix.count)
        } else if labels.count == 3, labels[2] == "svc" {
            labels.removeLast()
        }
        guard labels.count == 2, labels.allSatisfy({ !$0.isEmpty }) else { return nil }
        self.service = labels[0]
        self.namespace = labels[1]
        self.port = port
    }

    init(service: String, namespace: String, port: Int?) {
        self.service = service
        self.namespace = namespace
        self.port = port
    }

    /// `svc.ns.svc.cluster.local[:port]`
    func fullyQualified(clusterDomain: String = "cluster.local") -> String {
        "\(service).\(namespace).svc.\(clusterDomain)" + (port.map { ":\($0)" } ?? "")
    }

    var description: String { fullyQualified() }
}
