import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turning `--san` strings into X.509 general names the way `step certificate create` does: an IP
/// address (v4 or v6) becomes an IP SAN, anything containing `://` a URI SAN, the rest DNS names.
enum SubjectAltName {
    static func parse(_ value: String, source: String = "--san") throws(IdentityError) -> GeneralName {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else {
            throw .invalidArgument("\(source): an empty subject alternative name")
        }
        if let ip = parseIP(trimmed) {
            return .ipAddress(ASN1OctetString(contentBytes: ip[...]))
        }
        if trimmed.contains("://") {
            return .uniformResourceIdentifier(trimmed)
        }
        if let at = trimmed.firstIndex(of: "@"), at != trimmed.startIndex {
            return .rfc822Name(trimmed)
        }
        guard isValidDNSName(trimmed) else {
            throw .invalidArgument(
                "\(source): '\(value)' is not a DNS name, an IP address or a URI (URIs must contain '://')"
            )
        }
        return .dnsName(trimmed.lowercased())
    }

    /// Letters, digits, `-`, `_` and `.`, optionally starting with a `*.` wildcard; labels of 1–63 bytes.
    static func isValidDNSName(_ name: String) -> Bool {
        var rest = Substring(name)
        if rest.hasPrefix("*.") { rest = rest.dropFirst(2) }
        if rest.hasSuffix(".") { rest = rest.dropLast() }
        guard !rest.isEmpty, rest.utf8.count <= 253 else { return false }
        for label in rest.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-" else { return false }
            guard label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                return false
            }
        }
        return true
    }

    /// The 4 or 16 network-order bytes of an IPv4 or IPv6 literal (brackets allowed for v6), or nil.
    static func parseIP(_ text: String) -> [UInt8]? {
        var literal = text
        if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        if !literal.contains(":") {
            var v4 = in_addr()
            guard inet_pton(AF_INET, literal, &v4) == 1 else { return nil }
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, literal, &v6) == 1 else { return nil }
        return withUnsafeBytes(of: &v6) { Array($0) }
    }

    /// Text form of 4 or 16 address bytes; other lengths (e.g. name-constraint ranges) as hex.
    static func formatIP(_ bytes: [UInt8]) -> String {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
        var buffer = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return bytes.map { String($0) }.joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
