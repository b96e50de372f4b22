/// The path of a request as route matching sees it (RFC 3986, 6.2.2): percent-encoded unreserved
/// characters decoded, repeated slashes merged, dot segments removed; the query kept as sent.
/// Where routes authorize, the request is matched and forwarded in this form, so that
/// `/public/../admin`, `//admin` or `/%61dmin` cannot pass a broad route and reach `/admin` at an
/// application that normalizes itself.
public enum RequestPath {
    /// Whether `path` may change when normalized: a cheap scan for `%`, `//` and `/.`.
    public static func needsNormalizing(_ path: String) -> Bool {
        var previous: UInt8 = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") { return false }
            if byte == UInt8(ascii: "%") { return true }
            if previous == UInt8(ascii: "/"), byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".") { return true }
            previous = byte
        }
        return false
    }

    /// The normalized form; a path that does not start with `/` (`*`, an absolute URI) is
    /// returned as it is.
    public static func normalized(_ path: String) -> String {
        guard path.hasPrefix("/") else { return path }
        let bytes = Array(path.utf8)
        let end = bytes.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.endIndex
        // Percent-decoding of unreserved characters only: an encoded '/' or '%' stays encoded.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(end)
        var i = 0
        while i < end {
            let byte = bytes[i]
            if byte == UInt8(ascii: "%"), i + 2 < end, let hi = hex(bytes[i + 1]), let lo = hex(bytes[i + 2])
            {
                let value = hi << 4 | lo
                if isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded += [UInt8(ascii: "%"), upperHex(hi), upperHex(lo)]
                }
                i += 3
                continue
            }
            decoded.append(byte)
            i += 1
        }
        // Segments, with empty ones (repeated slashes) and dot segments resolved.
        var segments: [ArraySlice<UInt8>] = []
        let parts = decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        var trailingSlash = false
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            switch part.count {
            case 0:
                trailingSlash = last
            case 1 where part.first == UInt8(ascii: "."):
                trailingSlash = last
            case 2 where part.first == UInt8(ascii: ".") && part.last == UInt8(ascii: "."):
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = last
            default:
                segments.append(part)
                trailingSlash = false
            }
        }
        var out: [UInt8] = []
        for segment in segments {
            out.append(UInt8(ascii: "/"))
            out += segment
        }
        if out.isEmpty || trailingSlash { out.append(UInt8(ascii: "/")) }
        out += bytes[end...]
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func upperHex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}
