public import Foundation
public import StarlingCore

/// One request as a proxy saw it, sent to the taps that are open: recorded when the response
/// head went back to the caller (or the proxy answered with an error itself).
public struct TapEvent: Sendable, Codable, Hashable {
    /// `outbound` (this workload called out), `inbound` (this workload was called), or
    /// `gateway` (a linked cluster's workload called through this cluster's gateway).
    public var direction: String
    public var method: String
    public var authority: String
    public var path: String
    public var status: Int
    /// Time to the response head, milliseconds; nil when the proxy answered itself before any.
    public var latencyMilliseconds: Double?
    /// The caller's and the callee's mesh identities ("" when not meshed).
    public var sourceIdentity: String
    public var destinationIdentity: String
    /// The clusters of the caller and the callee, when known.
    public var sourceCluster: String?
    public var destinationCluster: String?
    /// The workload on the other end, when discovery named it (outbound only).
    public var destinationWorkload: String?
    /// The request went over the mesh's mTLS.
    public var tls: Bool
    /// Unix time in milliseconds.
    public var timestamp: Int64

    enum CodingKeys: String, CodingKey {
        case direction, method, authority, path, status, tls, timestamp
        case latencyMilliseconds = "latency_ms"
        case sourceIdentity = "src_identity", destinationIdentity = "dst_identity"
        case sourceCluster = "src_cluster", destinationCluster = "dst_cluster"
        case destinationWorkload = "dst_workload"
    }

    public init(
        direction: String, method: String, authority: String, path: String, status: Int, latency: Duration?,
        sourceIdentity: String, destinationIdentity: String, sourceCluster: String? = nil,
        destinationCluster: String? = nil, destinationWorkload: String? = nil, tls: Bool,
        timestamp: Date = Date()
    ) {
        self.direction = direction
        self.method = method
        self.authority = authority
        self.path = path
        self.status = status
        self.latencyMilliseconds = latency?.inMilliseconds
        self.sourceIdentity = sourceIdentity
        self.destinationIdentity = destinationIdentity
        self.sourceCluster = sourceCluster
        self.destinationCluster = destinationCluster
        self.destinationWorkload = destinationWorkload
        self.tls = tls
        self.timestamp = Int64((timestamp.timeIntervalSince1970 * 1000).rounded())
    }
}

/// Which events a tap wants; every condition given must hold.
public struct TapFilter: Sendable, Hashable {
    public var direction: String?
    public var method: String?
    /// The path starts with this.
    public var pathPrefix: String?
    /// The authority names this service: exactly, or as its first labels (`podinfo` matches
    /// `podinfo.default.svc.cluster.local:9898`, not `podinfo-workload2…`).
    public var authority: String?

    public init(direction: String? = nil, method: String? = nil, pathPrefix: String? = nil, authority: String? = nil) {
        self.direction = direction
        self.method = method
        self.pathPrefix = pathPrefix
        self.authority = authority
    }

    /// From `GET /tap` query parameters: `direction`, `method`, `path` (prefix), `authority`.
    /// Unknown names and bad values are refused with what was wrong.
    public init(query: [String: String]) throws(TapRequestError) {
        let known: Set<String> = ["direction", "method", "path", "authority"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw TapRequestError("unknown tap filter '\(unknown)': use direction, method, path or authority")
        }
        func value(_ name: String) -> String? { query[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let d = value("direction"), !["inbound", "outbound", "gateway"].contains(d) {
            throw TapRequestError("direction must be inbound, outbound or gateway, not '\(d)'")
        }
        if let p = value("path"), !p.hasPrefix("/") {
            throw TapRequestError("path must start with '/' (a prefix such as /api), not '\(p)'")
        }
        self.init(direction: value("direction"), method: value("method")?.uppercased(), pathPrefix: value("path"), authority: value("authority"))
    }

    public func matches(_ event: TapEvent) -> Bool {
        if let direction, event.direction != direction { return false }
        if let method, event.method != method { return false }
        if let pathPrefix, !event.path.hasPrefix(pathPrefix) { return false }
        if let authority, event.authority != authority, !event.authority.hasPrefix(authority + "."),
            !event.authority.hasPrefix(authority + ":")
        {
            return false
        }
        return true
    }
}

public struct TapRequestError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
