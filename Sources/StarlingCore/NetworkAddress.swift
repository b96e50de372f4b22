/// Checks for IP address literals and `host:port` strings, without any name resolution.
public enum NetworkAddress {
    /// True for a dotted-quad IPv4 literal such as `127.1.0.5` (no leading zeros).
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(part), value <= 255
            else { return false }
            return part.count == 1 || part.first != "0"
        }
    }

    /// True for an IPv6 literal such as `::1`, `fd00::5` or `::ffff:10.0.0.1` (no zone, no brackets).
    public static func isIPv6(_ s: String) -> Bool {
        guard s.contains(":"), s.utf8.count <= 45 else { return false }
        var groups = 0
        var sawDoubleColon = false
        let halves = s.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return false }
        sawDoubleColon = halves.count == 2
        for (h, half) in halves.enumerated() {
            if half.isEmpty { continue }
            let fields = half.split(separator: ":", omittingEmptySubsequences: false)
            for (i, field) in fields.enumerated() {
                let isLast = h == halves.count - 1 && i == fields.count - 1
                if isLast, field.contains(".") {
                    guard isIPv4(String(field)) else { return false }
                    groups += 2
                    continue
                }
                guard (1...4).contains(field.count), field.allSatisfy({ $0.isHexDigit }) else { return false }
                groups += 1
            }
        }
        return sawDoubleColon ? groups <= 7 : groups == 8
    }

    /// True for an IPv4 or IPv6 literal.
    public static func isIPAddress(_ s: String) -> Bool { isIPv4(s) || isIPv6(s) }

    /// True for an address that means "every address of this host" (`0.0.0.0`, `::`).
    public static func isWildcard(_ host: String) -> Bool {
        ["0.0.0.0", "::", "[::]"].contains(host)
    }

    /// `host:port`, or `[host]:port` for an IPv6 host: the inverse of ``splitHostPort(_:)``.
    public static func joinHostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Splits `host:port` or `[ipv6]:port`. The host must be an IP literal or a DNS name.
    /// Returns nil with no explanation; callers phrase the error for their field.
    public static func splitHostPort(_ s: String) -> (host: String, port: Int)? {
        guard let parts = HostPort.split(s[...]), let portText = parts.port,
            let port = HostPort.port(portText, in: 1...65535)
        else { return nil }
        let host = String(parts.host)
        guard parts.bracketed ? isIPv6(host) : (!host.contains(":") && isHost(host)) else { return nil }
        return (host, port)
    }

    /// True for an IP literal or a DNS name (letters, digits, `-`, dot-separated; any case).
    public static func isHost(_ s: String) -> Bool {
        if isIPAddress(s) { return true }
        let lowered = s.lowercased()
        let trimmed = lowered.hasSuffix(".") ? String(lowered.dropLast()) : lowered
        return ResourceNames.dns1123SubdomainProblem(trimmed) == nil
    }
}

extension String {
    /// The parts around `::` (at most splits on the first; a second `::` yields three parts).
    fileprivate func components(separatedByDoubleColon _: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: "::") {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
