public import NIOHPACK
public import NIOHTTP1

/// Connection-specific ("hop-by-hop") header fields, which a proxy must not forward (RFC 9110
/// §7.6.1) and which HTTP/2 forbids outright (RFC 9113 §8.2.2).
///
/// Besides the fixed list, every field named in a `Connection` header is hop-by-hop too.
/// `te` is the one exception HTTP/2 keeps: `te: trailers` (gRPC sends it) survives.
public enum HopByHopHeaders {
    /// Whether `name` (any case) is one of the fixed hop-by-hop names: `connection`, `keep-alive`,
    /// `proxy-connection`, `proxy-authenticate`, `proxy-authorization`, `transfer-encoding`,
    /// `upgrade`, `te`, `trailer`. Most names are ruled out by their length alone; the others are
    /// compared without making a lower-cased copy (this runs on every header of every request).
    static func isFixedName(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: name.hasASCIICaseInsensitivePrefix("te")
        case 7: name.hasASCIICaseInsensitivePrefix("upgrade") || name.hasASCIICaseInsensitivePrefix("trailer")
        case 10: name.hasASCIICaseInsensitivePrefix("connection") || name.hasASCIICaseInsensitivePrefix("keep-alive")
        case 16: name.hasASCIICaseInsensitivePrefix("proxy-connection")
        case 17: name.hasASCIICaseInsensitivePrefix("transfer-encoding")
        case 18: name.hasASCIICaseInsensitivePrefix("proxy-authenticate")
        case 19: name.hasASCIICaseInsensitivePrefix("proxy-authorization")
        default: false
        }
    }

    /// Whether the fields' only hop-by-hop field is a `Connection` naming no other field
    /// (`keep-alive` or `close`): what almost every HTTP/1.1 response carries.
    private static func onlyPlainConnection(_ headers: HTTPHeaders) -> Bool {
        var plain = false
        for (name, value) in headers where isFixedName(name) {
            guard !plain, name.isASCIICaseInsensitiveEqual(to: "connection") else { return false }
            let token = value.trimmingASCIIWhitespace()
            guard token.isASCIICaseInsensitiveEqual(to: "keep-alive") || token.isASCIICaseInsensitiveEqual(to: "close")
            else { return false }
            plain = true
        }
        return plain
    }

    /// Lower-case names listed in the `Connection` header values (`Connection: close, x-foo`).
    static func connectionNominated<S: Sequence>(_ values: S) -> Set<String> where S.Element == String {
        var nominated = Set<String>()
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingASCIIWhitespace().lowercased()
                if !name.isEmpty { nominated.insert(name) }
            }
        }
        return nominated
    }

    /// Whether a `te` value may cross into HTTP/2: only `trailers`.
    static func isTrailersOnly(_ value: String) -> Bool {
        value.trimmingASCIIWhitespace().lowercased() == "trailers"
    }

    /// Removes hop-by-hop fields from HTTP/1 headers, keeping `te: trailers`.
    public static func remove(from headers: inout HTTPHeaders) {
        // Nominated names come with a `Connection` field, itself a fixed name: without any fixed
        // name there is nothing to remove (most requests).
        guard headers.contains(where: { isFixedName($0.name) }) else { return }
        if onlyPlainConnection(headers) {
            headers.remove(name: "connection")
            return
        }
        let nominated = connectionNominated(headers["connection"])
        let keepTrailers = headers["te"].contains(where: isTrailersOnly)
        // Removed in place, name by name: a response usually carries one such field
        // (`Connection: keep-alive`), and rebuilding the whole list cost more than the rest.
        var doomed = nominated
        for (name, _) in headers where isFixedName(name) { doomed.insert(name.lowercased()) }
        for name in doomed { headers.remove(name: name) }
        if keepTrailers { headers.add(name: "te", value: "trailers") }
    }

    /// Calls `body` with each field of `headers` that `remove(from:)` would keep, in order, without
    /// copying the list in the common cases (no hop-by-hop field, or a lone plain `Connection`).
    static func forEachEndToEnd(_ headers: HTTPHeaders, _ body: (_ name: String, _ value: String) -> Void) {
        if !headers.contains(where: { isFixedName($0.name) }) {
            for (name, value) in headers { body(name, value) }
        } else if onlyPlainConnection(headers) {
            for (name, value) in headers where !isFixedName(name) { body(name, value) }
        } else {
            var fields = headers
            remove(from: &fields)
            for (name, value) in fields { body(name, value) }
        }
    }

    /// Removes hop-by-hop fields from HTTP/2 headers, keeping `te: trailers`.
    public static func remove(from headers: inout HPACKHeaders) {
        guard headers.contains(where: { isFixedName($0.name) }) else { return }
        let nominated = connectionNominated(headers["connection"])
        let keepTrailers = headers["te"].contains(where: isTrailersOnly)
        var result = HPACKHeaders()
        for (name, value, indexing) in headers {
            if isFixedName(name) || (!nominated.isEmpty && nominated.contains(name.lowercased())) { continue }
            result.add(name: name, value: value, indexing: indexing)
        }
        if keepTrailers { result.add(name: "te", value: "trailers") }
        headers = result
    }
}

extension StringProtocol {
    /// Whether the text starts with `prefix`, ASCII letters compared without case (no
    /// lower-cased copy is made).
    func hasASCIICaseInsensitivePrefix(_ prefix: String) -> Bool {
        var text = utf8.makeIterator()
        for expected in prefix.utf8 {
            guard let byte = text.next() else { return false }
            if byte != expected && Self.asciiLowercased(byte) != Self.asciiLowercased(expected) { return false }
        }
        return true
    }

    /// Whether the text equals `other`, ASCII letters compared without case.
    func isASCIICaseInsensitiveEqual(to other: String) -> Bool {
        utf8.count == other.utf8.count && hasASCIICaseInsensitivePrefix(other)
    }

    private static func asciiLowercased(_ byte: UInt8) -> UInt8 {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
    }

    /// The text without leading and trailing spaces and tabs.
    func trimmingASCIIWhitespace() -> Substring {
        var sub = Substring(self)
        while let first = sub.first, first == " " || first == "\t" { sub.removeFirst() }
        while let last = sub.last, last == " " || last == "\t" { sub.removeLast() }
        return sub
    }
}
