/// The one `host:port` type: an address to connect to or listen on, or the authority of an HTTP
/// request. Parsed at the edge (flags, contexts, resources, request heads), carried as a value.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` (IPv6 hosts in brackets).
    public var description: String { NetworkAddress.joinHostPort(host, port) }

    // MARK: - The one split

    /// The parts of `host`, `host:port`, `[v6]` or `[v6]:port`, and nothing more: the host
    /// (without its brackets), the port's text (nil when there is no `:`), and whether the host
    /// was bracketed. Nil only when a bracket is not closed or is followed by anything but
    /// `:port`. Every reader of `host:port` text splits it here, then checks what its field
    /// needs (an address's host is an IP literal or a DNS name; an authority's port may be
    /// defaulted); an unbracketed host with a colon in it splits at the last one.
    public static func split(_ text: Substring) -> (host: Substring, port: Substring?, bracketed: Bool)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil, true) }
            guard rest.hasPrefix(":") else { return nil }
            return (host, rest.dropFirst(), true)
        }
        guard let colon = text.lastIndex(of: ":") else { return (text, nil, false) }
        return (text[..<colon], text[text.index(after: colon)...], false)
    }

    /// The port of an authority (`host:port`, `[v6]:port`), for the per-request path: one pass
    /// over the bytes, no strings made; nil when there is none or it is not 1…65535.
    public static func port(ofAuthority authority: String) -> Int? {
        let bytes = authority.utf8
        guard let colon = bytes.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        let digits = bytes[bytes.index(after: colon)...]
        guard !digits.isEmpty, digits.count <= 5 else { return nil }
        var port = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return (1...65535).contains(port) ? port : nil
    }

    /// A port's text: decimal digits only, within `range`.
    public static func port(_ text: Substring, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let port = Int(text), range.contains(port)
        else { return nil }
        return port
    }

    // MARK: - Addresses

    /// Parses `host:port` or `[v6]:port`, the host an IP literal or a DNS name; nil otherwise.
    public init?(parsing text: String) {
        guard let (host, port) = NetworkAddress.splitHostPort(text) else { return nil }
        self.init(host: host, port: port)
    }

    /// Parses an address given in `field` (a flag, a context entry), saying what is wrong with
    /// it. `allowingPortZero`: a listen address, where port 0 asks for any free port.
    public static func parse(_ text: String, field: String, allowingPortZero: Bool = false) throws(HostPortError) -> HostPort {
        guard let parts = split(text[...]) else {
            throw HostPortError("\(field) is '\(text)'; expected [IPV6]:PORT, e.g. [::1]:8086")
        }
        let host = parts.host
        if parts.bracketed {
            guard parts.port != nil else {
                throw HostPortError("\(field) is '\(text)'; expected [IPV6]:PORT, e.g. [::1]:8086")
            }
            guard NetworkAddress.isIPv6(String(host)) else {
                throw HostPortError("\(field) is '\(text)'; '\(host)' in brackets is not an IPv6 address")
            }
        } else {
            guard parts.port != nil, !host.contains(":") else {
                throw HostPortError("\(field) is '\(text)'; expected HOST:PORT, e.g. 127.1.0.1:8086")
            }
            guard !host.isEmpty else { throw HostPortError("\(field) is '\(text)'; the host is empty") }
            guard NetworkAddress.isHost(String(host)) else {
                throw HostPortError("\(field) is '\(text)'; '\(host)' is not an IP address or a DNS name")
            }
        }
        let lowest = allowingPortZero ? 0 : 1
        guard let port = port(parts.port ?? "", in: lowest...65535) else {
            throw HostPortError("\(field) is '\(text)'; the port must be a number from \(lowest) to 65535")
        }
        return HostPort(host: String(host), port: port)
    }

    /// Parses a comma-separated list of `host:port` (`A:8086,B:8086`); nil when it is empty or
    /// any part does not parse.
    public static func list(parsing text: String) -> [HostPort]? {
        let parts = text.split(separator: ",").map { $0.trimmingSpaces() }
        guard !parts.isEmpty else { return nil }
        var endpoints: [HostPort] = []
        for part in parts {
            guard let endpoint = HostPort(parsing: part) else { return nil }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    // MARK: - HTTP authorities

    /// Parses the authority of an HTTP request: `host`, `host:port`, `[v6]` or `[v6]:port`, the
    /// host lower-cased (any name a client may write); nil when the port is not 1…65535 or the
    /// host is empty.
    public init?(authority text: String, defaultPort: Int) {
        guard let parts = Self.split(text[...]), !parts.host.isEmpty else { return nil }
        var port = defaultPort
        if let portText = parts.port {
            guard let p = Int(portText) else { return nil }
            port = p
        }
        guard (1...65535).contains(port) else { return nil }
        self.host = parts.host.lowercased()
        self.port = port
    }

    /// `text` in the form ``description`` gives (lower-case `host:port`), with the port defaulted;
    /// nil when it does not parse. An authority already in that form is returned as it is, found
    /// with one pass over its bytes (the per-request case: `Host: web.ns:8080`).
    public static func canonical(_ text: String, defaultPort: Int) -> String? {
        var colons = 0
        var digitsAfterColon = 0
        var port = 0
        var plain = true
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: ":"):
                colons += 1
            case UInt8(ascii: "0")...UInt8(ascii: "9") where colons == 1:
                // A leading zero is spelled differently by `description`.
                if digitsAfterColon == 0 && byte == UInt8(ascii: "0") { plain = false }
                digitsAfterColon += 1
                port = port &* 10 &+ Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                if colons == 1 { plain = false }
            default:
                plain = false
            }
        }
        if plain, colons == 1, (1...5).contains(digitsAfterColon), (1...65535).contains(port),
            text.utf8.first != UInt8(ascii: ":")
        {
            return text
        }
        return HostPort(authority: text, defaultPort: defaultPort)?.description
    }
}

/// What is wrong with an address, phrased for the field it was given in.
public struct HostPortError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
