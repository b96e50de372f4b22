public import StarlingCore

/// The HTTPRoute matches of a service (from its profile), in Gateway API precedence: which route
/// a request belongs to, for the `route` label of the outbound metrics (`viz stat route`).
public struct RouteTable: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var route: String
        public var match: HTTPRouteMatch

        public init(route: String, match: HTTPRouteMatch) {
            self.route = route
            self.match = match
        }
    }

    /// Most specific first; equally specific ones keep the order they came in (the controller
    /// sends routes in name order; Gateway API would order ties by creation time first).
    public let entries: [Entry]

    public init(_ entries: [Entry] = []) {
        self.entries = entries.enumerated().sorted { a, b in
            if HTTPRouteMatch.isMoreSpecific(a.element.match, than: b.element.match) { return true }
            if HTTPRouteMatch.isMoreSpecific(b.element.match, than: a.element.match) { return false }
            return a.offset < b.offset
        }.map(\.element)
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The route of the first (most specific) match; nil when none matches.
    public func route(method: String, path: String, header: (String) -> String?) -> String? {
        let path = Substring(path)
        return entries.first { $0.match.matches(method: method, path: path, header: header) }?.route
    }
}
