/// One `matches` entry of an HTTPRoute rule (Gateway API `HTTPRouteMatch`), as far as the mesh
/// evaluates it per request: the path (`Exact` or `PathPrefix`, default `PathPrefix /`), the
/// method, and headers compared exactly. A rule matches a request when any of its matches does;
/// a match needs all of its conditions.
public struct HTTPRouteMatch: Sendable, Hashable, Codable {
    public enum PathType: String, Sendable, Hashable, Codable {
        case exact = "Exact"
        case prefix = "PathPrefix"
    }

    public var pathType: PathType
    public var path: String
    public var method: String?
    /// Header names lower-cased; values compared exactly.
    public var headers: [String: String]

    public init(pathType: PathType = .prefix, path: String = "/", method: String? = nil, headers: [String: String] = [:]) {
        self.pathType = pathType
        self.path = path
        self.method = method
        self.headers = headers
    }

    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]

    /// Reads one `matches` entry, refusing what the mesh does not evaluate (a regular
    /// expression, query parameters) rather than ignoring it.
    init(_ reader: FieldReader) throws(ResourceError) {
        var pathType = PathType.prefix
        var path = "/"
        if let p = try reader.object("path") {
            let type = try p.string("type") ?? "PathPrefix"
            guard let parsed = PathType(rawValue: type) else {
                throw p.invalid("type", "path type \(JSONTextWriter.quoted(type)) is not supported; use Exact or PathPrefix")
            }
            pathType = parsed
            path = try p.string("value") ?? "/"
            guard path.hasPrefix("/") else { throw p.invalid("value", "a path must start with '/', got \(JSONTextWriter.quoted(path))") }
        }
        let method = try reader.string("method")
        if let method, !Self.methods.contains(method) {
            throw reader.invalid("method", "\(JSONTextWriter.quoted(method)) is not an HTTP method (GET, POST, …, in capitals)")
        }
        var headers: [String: String] = [:]
        for h in try reader.objects("headers") ?? [] {
            let type = try h.string("type") ?? "Exact"
            guard type == "Exact" else {
                throw h.invalid("type", "header match type \(JSONTextWriter.quoted(type)) is not supported; use Exact")
            }
            headers[try h.requiredString("name").lowercased()] = try h.requiredString("value")
        }
        if try reader.array("queryParams") != nil {
            throw reader.invalid("queryParams", "query parameter matches are not supported; match on path, method and headers")
        }
        self.init(pathType: pathType, path: path, method: method, headers: headers)
    }

    /// Whether a request with this method, path (query string included) and headers matches.
    /// `PathPrefix` matches whole path segments (`/api` matches `/api` and `/api/x`, not `/apix`).
    public func matches(method: String, path requestPath: Substring, header: (String) -> String?) -> Bool {
        if let m = self.method, m != method { return false }
        let pathOnly = requestPath.prefix { $0 != "?" && $0 != "#" }
        switch pathType {
        case .exact:
            guard pathOnly == path else { return false }
        case .prefix:
            let prefix = path.hasSuffix("/") && path.count > 1 ? Substring(path.dropLast()) : Substring(path)
            guard pathOnly.hasPrefix(prefix) else { return false }
            if prefix != "/", pathOnly.count > prefix.count, pathOnly[pathOnly.index(pathOnly.startIndex, offsetBy: prefix.count)] != "/" {
                return false
            }
        }
        for (name, value) in headers where header(name) != value { return false }
        return true
    }

    /// Gateway API precedence: an exact path before a prefix, a longer prefix before a shorter,
    /// then a match with a method, then the one with more header conditions.
    public static func isMoreSpecific(_ a: HTTPRouteMatch, than b: HTTPRouteMatch) -> Bool {
        if a.pathType != b.pathType { return a.pathType == .exact }
        if a.path.count != b.path.count { return a.path.count > b.path.count }
        if (a.method != nil) != (b.method != nil) { return a.method != nil }
        return a.headers.count > b.headers.count
    }
}
