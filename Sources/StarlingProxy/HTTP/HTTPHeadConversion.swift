public import NIOHPACK
public import NIOHTTP1

/// Converts request and response heads between HTTP/1.x (`HTTPRequestHead`/`HTTPResponseHead`) and
/// HTTP/2 header lists (`HPACKHeaders` with pseudo-header fields), for a proxy that carries HTTP/1
/// over HTTP/2 and back.
///
/// Every conversion drops hop-by-hop fields (``HopByHopHeaders``); HTTP/2 names are lower-case.
/// Pseudo-headers come first, as RFC 9113 §8.3 requires.
public enum HTTPHeadConversion {
    /// Why a head cannot be converted.
    public struct ConversionError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    // MARK: - HTTP/1 → HTTP/2

    /// HTTP/2 request headers for an HTTP/1 request head.
    ///
    /// - Parameters:
    ///   - head: the request as the client sent it (origin-form or absolute-form target).
    ///   - authority: the `:authority` to send (the `Host` or the absolute-form target's authority).
    ///   - scheme: `:scheme`, `http` for plain clients.
    /// - Returns: pseudo-headers `:method`, `:scheme`, `:authority`, `:path` (origin-form; `*` for
    ///   `OPTIONS *`), then the remaining lower-case fields without `host` and hop-by-hop fields.
    public static func http2RequestHeaders(
        from head: HTTPRequestHead, authority: String, scheme: String = "http"
    ) -> HPACKHeaders {
        var result = HPACKHeaders()
        result.reserveCapacity(head.headers.count + 4)
        result.add(name: ":method", value: head.method.rawValue)
        result.add(name: ":scheme", value: scheme)
        result.add(name: ":authority", value: authority)
        result.add(name: ":path", value: originFormPath(head.uri))
        HopByHopHeaders.forEachEndToEnd(head.headers) { name, value in
            let lower = http2Name(name)
            if lower != "host" { result.add(name: lower, value: value) }
        }
        return result
    }

    /// HTTP/2 response headers for an HTTP/1 response head (`:status` first).
    public static func http2ResponseHeaders(from head: HTTPResponseHead) -> HPACKHeaders {
        var result = HPACKHeaders()
        result.reserveCapacity(head.headers.count + 1)
        result.add(name: ":status", value: String(head.status.code))
        HopByHopHeaders.forEachEndToEnd(head.headers) { name, value in
            result.add(name: http2Name(name), value: value)
        }
        return result
    }

    /// HTTP/2 trailers from HTTP/1 chunked trailers (lower-case, hop-by-hop removed).
    public static func http2Trailers(from trailers: HTTPHeaders) -> HPACKHeaders {
        var result = HPACKHeaders()
        HopByHopHeaders.forEachEndToEnd(trailers) { name, value in result.add(name: http2Name(name), value: value) }
        return result
    }

    /// `name` lower-cased for HTTP/2; the same string when it has no upper-case ASCII letter
    /// (no copy, and no Unicode case mapping for the common case).
    static func http2Name(_ name: String) -> String {
        for byte in name.utf8 where byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") {
            return name.lowercased()
        }
        return name
    }

    // MARK: - HTTP/2 → HTTP/1

    /// An HTTP/1.1 request head for HTTP/2 request headers: `:path` becomes the target, `:authority`
    /// the `Host` field; other pseudo-headers are dropped. A request with a body (`hasBody`) and no
    /// `content-length` is sent chunked, whatever its method (NIO's encoder frames only the
    /// methods that usually carry one); a TRACE with a body is refused (RFC 9110 §9.3.8: NIO would
    /// write it unframed, and the application would read it as a second request on a pooled
    /// connection).
    public static func http1RequestHead(
        from headers: HPACKHeaders, hasBody: Bool, version: HTTPVersion = .http1_1
    ) throws(ConversionError) -> HTTPRequestHead {
        guard let method = headers.first(name: ":method"), !method.isEmpty else {
            throw ConversionError("the request has no :method")
        }
        if hasBody, method == "TRACE" { throw ConversionError("a TRACE request must not have a body") }
        let path = headers.first(name: ":path") ?? (method == "OPTIONS" ? "*" : "/")
        var fields = HTTPHeaders()
        fields.reserveCapacity(headers.count)
        if let authority = headers.first(name: ":authority") ?? headers.first(name: "host") {
            fields.add(name: "host", value: authority)
        }
        for (name, value, _) in headers where !name.hasPrefix(":") && name != "host" {
            fields.add(name: name, value: value)
        }
        HopByHopHeaders.remove(from: &fields)
        if hasBody, !fields.contains(name: "content-length") {
            fields.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        }
        return HTTPRequestHead(version: version, method: HTTPMethod(rawValue: method), uri: path, headers: fields)
    }

    /// An HTTP/1 response head for HTTP/2 response headers, framed for the client:
    ///
    /// - no body (HEAD request, 1xx, 204, 304): `content-length` kept as the peer sent it, no
    ///   `transfer-encoding`;
    /// - a `content-length` from the peer: kept;
    /// - otherwise HTTP/1.1 clients get `transfer-encoding: chunked`, HTTP/1.0 clients get a
    ///   close-delimited body (`connection: close`).
    ///
    /// Build the HTTP/1 encoder with `automaticallySetFramingHeaders = false`: this function does
    /// the framing (NIO's automatic framing would chunk a HEAD response).
    public static func http1ResponseHead(
        from headers: HPACKHeaders, requestMethod: HTTPMethod, version: HTTPVersion
    ) throws(ConversionError) -> HTTPResponseHead {
        guard let statusText = headers.first(name: ":status"), let code = Int(statusText), (100...999).contains(code)
        else {
            throw ConversionError("the response has no valid :status")
        }
        var fields = HTTPHeaders()
        fields.reserveCapacity(headers.count + 1)
        for (name, value, _) in headers where !name.hasPrefix(":") {
            fields.add(name: name, value: value)
        }
        HopByHopHeaders.remove(from: &fields)
        let status = HTTPResponseStatus(statusCode: code)
        let bodyless = requestMethod == .HEAD || (100..<200).contains(code) || code == 204 || code == 304
        if !bodyless && !fields.contains(name: "content-length") {
            if version.major == 1 && version.minor >= 1 {
                fields.add(name: "transfer-encoding", value: "chunked")
            } else {
                fields.add(name: "connection", value: "close")
            }
        }
        return HTTPResponseHead(version: version, status: status, headers: fields)
    }

    /// HTTP/1 trailers from HTTP/2 trailers (pseudo-headers dropped).
    public static func http1Trailers(from trailers: HPACKHeaders) -> HTTPHeaders {
        var fields = HTTPHeaders()
        for (name, value, _) in trailers where !name.hasPrefix(":") {
            fields.add(name: name, value: value)
        }
        HopByHopHeaders.remove(from: &fields)
        return fields
    }

    // MARK: - Targets

    /// The origin-form of a request target: the path and query of an absolute-form target,
    /// the target itself otherwise (`/` when empty).
    public static func originFormPath(_ target: String) -> String {
        if target == "*" || target.hasPrefix("/") { return target }
        guard let split = RequestTarget(target) else { return target.isEmpty ? "/" : target }
        return split.path
    }
}

/// A request target split into authority and path: absolute-form (`http://host:port/path?q`) or
/// authority-form (`host:port`, as CONNECT uses).
public struct RequestTarget: Sendable, Hashable {
    /// The scheme, lower-case (`http`), nil for authority-form.
    public var scheme: String?
    /// `host[:port]` as written.
    public var authority: String
    /// The path and query, `/` when the target has none.
    public var path: String

    /// Parses an absolute-form target; nil for origin-form or malformed targets.
    public init?(_ target: String) {
        // Origin-form (`/path`), what nearly every request carries: no scheme to look for.
        guard target.utf8.first != UInt8(ascii: "/"), let schemeEnd = target.firstRange(of: "://") else { return nil }
        let scheme = target[..<schemeEnd.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." })
        else { return nil }
        let rest = target[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        // Strip userinfo: never part of the routing authority.
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty, !authority.contains(where: { $0 == " " || $0 == "\t" }) else { return nil }
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        self.scheme = scheme
        self.authority = String(authority)
        self.path = path
    }
}
