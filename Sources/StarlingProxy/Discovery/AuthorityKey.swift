/// The one cache key of a service authority: `svc.ns.svc.CLUSTER_DOMAIN:PORT`.
///
/// The application may name a service `svc.ns`, `svc.ns.svc` or `svc.ns.svc.cluster.local`, with
/// or without a port, in any case and with a trailing dot; all of these share one destination
/// stream. An authority without a port keeps having none, and a name that is not a service
/// authority (`example.com:80`) is kept as given (lower-cased, trailing dot dropped).
public enum AuthorityKey {
    public static func normalize(_ authority: String, clusterDomain: String = "cluster.local") -> String {
        var host = Substring(authority.lowercased())
        var port: Substring?
        if let colon = host.lastIndex(of: ":"), !host.hasPrefix("[") {
            let digits = host[host.index(after: colon)...]
            if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) {
                port = digits
                host = host[..<colon]
            }
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        var labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let suffix: [Substring] = ["svc"] + clusterDomain.lowercased().split(separator: ".")
        if labels.count == 2 + suffix.count, Array(labels.suffix(suffix.count)) == suffix {
            labels.removeLast(suffix.count)
        } else if labels.count == 3, labels[2] == "svc" {
            labels.removeLast()
        }
        let name: String
        if labels.count == 2, labels.allSatisfy({ !$0.isEmpty }) {
            name = "\(labels[0]).\(labels[1]).svc.\(clusterDomain.lowercased())"
        } else {
            name = String(host)
        }
        return port.map { "\(name):\($0)" } ?? name
    }
}
