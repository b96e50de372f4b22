/// A local cluster's loopback range, `127.N.0.0/16` with N from 1 to 255.
///
/// Each local cluster owns one such range so that its controller (`127.N.0.1`) and its workloads
/// (other addresses of the range) never collide with another cluster's on the default ports.
public struct ClusterAddressRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The second octet, N in `127.N.0.0/16`.
    public let octet: Int

    /// The range `127.octet.0.0/16`; nil unless `octet` is in 1...255.
    public init?(octet: Int) {
        guard (1...255).contains(octet) else { return nil }
        self.octet = octet
    }

    /// Parses `127.N.0.0/16`, naming `source` (a flag or a file) in errors.
    init(parsing text: String, source: String = "--address-range") throws(CLIError) {
        let example = "such as 127.3.0.0/16"
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw CLIError("\(source) \(text): expected a CIDR range, \(example)")
        }
        guard parts[1] == "16" else {
            throw CLIError("\(source) \(text): the prefix length must be /16, \(example)")
        }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        let values = octets.compactMap { UInt8($0) }
        guard octets.count == 4, values.count == 4, octets.allSatisfy({ $0 == "0" || !$0.hasPrefix("0") }) else {
            throw CLIError("\(source) \(text): '\(parts[0])' is not an IPv4 address, \(example)")
        }
        guard values[0] == 127 else {
            throw CLIError("\(source) \(text): must be a /16 inside 127.0.0.0/8 (loopback), \(example)")
        }
        guard values[2] == 0, values[3] == 0 else {
            throw CLIError("\(source) \(text): host bits are set; the /16 containing it is 127.\(values[1]).0.0/16")
        }
        guard values[1] != 0 else {
            throw CLIError(
                "\(source) \(text): 127.0.0.0/16 is reserved for the host's own loopback (127.0.0.1); pick 127.N.0.0/16 with N ≥ 1"
            )
        }
        self.octet = Int(values[1])
    }

    /// The controller's address in the range, `127.N.0.1`.
    public var controllerHost: String { "127.\(octet).0.1" }

    public var description: String { "127.\(octet).0.0/16" }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.octet < rhs.octet }

    /// The lowest range from `127.1.0.0/16` up that is not in `used`, or nil when all 255 are taken.
    static func lowestFree(excluding used: Set<ClusterAddressRange>) -> ClusterAddressRange? {
        for octet in 1...255 {
            if let range = ClusterAddressRange(octet: octet), !used.contains(range) { return range }
        }
        return nil
    }
}
