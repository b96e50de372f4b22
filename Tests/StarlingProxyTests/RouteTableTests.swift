import StarlingCore
import Testing

@testable import StarlingProxy

/// Which HTTPRoute a request is counted under: Gateway API precedence, not the routes' order.
@Suite struct RouteTableTests {
    @Test func theMostSpecificMatchWins() {
        let table = RouteTable([
            .init(route: "catch-all", match: HTTPRouteMatch()),
            .init(route: "api", match: HTTPRouteMatch(pathType: .prefix, path: "/api")),
            .init(route: "api-v1", match: HTTPRouteMatch(pathType: .prefix, path: "/api/v1")),
            .init(route: "health", match: HTTPRouteMatch(pathType: .exact, path: "/api/v1/health")),
            .init(route: "api-posts", match: HTTPRouteMatch(pathType: .prefix, path: "/api", method: "POST")),
        ])
        func route(_ method: String, _ path: String) -> String? { table.route(method: method, path: path, header: { _ in nil }) }
        #expect(route("GET", "/api/v1/health") == "health")
        #expect(route("GET", "/api/v1/users") == "api-v1")
        #expect(route("POST", "/api/other") == "api-posts")
        #expect(route("GET", "/api/other") == "api")
        #expect(route("GET", "/") == "catch-all")
    }

    @Test func noRoutesNoMatchNoLabel() {
        #expect(RouteTable().route(method: "GET", path: "/", header: { _ in nil }) == nil)
        let table = RouteTable([.init(route: "status", match: HTTPRouteMatch(pathType: .prefix, path: "/status"))])
        #expect(table.route(method: "GET", path: "/other", header: { _ in nil }) == nil)
    }
}
