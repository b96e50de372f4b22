/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32 or
/// /128. Addresses are compared as bytes, so the text form of the caller's address does not matter.
public struct IPNetwork: Sendable, Hashable, Codable, CustomStringConvertible {
    /// 4 or 16 bytes, with the bits past the prefix cleared.
    public let bytes: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPNetwork.parseAddress(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        var length = maximum
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy(\.isASCII), let n = Int(parts[1]),
                (0...maximum).contains(n)
            else { return nil }
            length = n
        }
        self.prefixLength = length
        self.bytes = IPNetwork.masked(address, to: length)
    }

    /// Whether `address` (text, either family; IPv4-mapped IPv6 counts as IPv4) is in this network.
    public func contains(_ address: String) -> Bool {
        guard let parsed = IPNetwork.parseAddress(address) else { return false }
        return contains(bytes: parsed)
    }

    public func contains(bytes address: [UInt8]) -> Bool {
        var address = address
        if address.count == 16, bytes.count == 4, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xff, address[11] == 0xff {
            address = Array(address[12...])
        }
        guard address.count == bytes.count else { return false }
        return IPNetwork.masked(address, to: prefixLength) == bytes
    }

    public var description: String {
        let text: String
        if bytes.count == 4 {
            text = bytes.map(String.init).joined(separator: ".")
        } else {
            text = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return "\(text)/\(prefixLength)"
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = IPNetwork(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a CIDR: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    private static func masked(_ address: [UInt8], to length: Int) -> [UInt8] {
        var out = address
        for i in 0..<out.count {
            let bits = length - i * 8
            if bits >= 8 { continue }
            out[i] = bits <= 0 ? 0 : out[i] & UInt8(truncatingIfNeeded: 0xff << (8 - bits))
        }
        return out
    }

    /// The bytes of an IPv4 (4) or IPv6 (16) address in text form; nil when it is neither.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(Substring(text)) }
        return parseIPv4(Substring(text))
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(part), n <= 255
            else { return nil }
            out.append(UInt8(n))
        }
        return out
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        // A zone (`%eth0`) names an interface, not a different address.
        let text = text.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt8]? {
            if s.isEmpty { return [] }
            var out: [UInt8] = []
            let items = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if i == items.count - 1, item.contains(".") {
                    guard let v4 = parseIPv4(item) else { return nil }
                    out += v4
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let value = UInt16(item, radix: 16) else { return nil }
                out += [UInt8(value >> 8), UInt8(value & 0xff)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}

/// A network a NetworkAuthentication admits, minus the networks it excepts.
public struct IPNetworkRule: Sendable, Hashable, Codable {
    public var cidr: IPNetwork
    public var except: [IPNetwork]

    public init(cidr: IPNetwork, except: [IPNetwork] = []) {
        self.cidr = cidr
        self.except = except
    }

    public func contains(bytes address: [UInt8]) -> Bool {
        cidr.contains(bytes: address) && !except.contains { $0.contains(bytes: address) }
    }
}
