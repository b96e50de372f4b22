import Crypto
import Foundation
import GRPCCore
import Logging
import Metrics
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import SwiftProtobuf

/// Streams endpoint sets (`Get`) and routing profiles (`GetProfile`) to proxies. The first message
/// is the current state; each change in the store sends what changed, within milliseconds.
struct DestinationService: Starling_V1_Destination.ServiceProtocol {
    let index: DestinationIndex
    let auth: Authenticator
    let clusterDomain: String
    let logger: Logger

    init(index: DestinationIndex, auth: Authenticator, clusterDomain: String = "cluster.local", logger: Logger) {
        self.index = index
        self.auth = auth
        self.clusterDomain = clusterDomain
        self.logger = logger
    }

    /// What a destination request names: a service, or — for a connection captured transparently
    /// and routed by its original destination — a workload's `address:port`.
    enum Target: Sendable {
        case service(ServiceAuthority)
        case address(host: String, port: Int)
    }

    private func target(_ request: ServerRequest<Starling_V1_GetDestination>) throws(RPCError) -> Target {
        if case .link = try auth.authenticate(request.metadata) {
            throw RPCError(code: .permissionDenied, message: "a link credential cannot use the destination API")
        }
        let path = request.message.path
        if let (host, port) = NetworkAddress.splitHostPort(path), NetworkAddress.isIPAddress(host) {
            return .address(host: host, port: port)
        }
        guard let authority = ServiceAuthority(path, clusterDomain: clusterDomain) else {
            throw RPCError(code: .invalidArgument, message: "\"\(path)\" is not a service authority (expected svc.ns[.svc.\(clusterDomain)][:port]) or a workload's address:port")
        }
        return .service(authority)
    }

    func get(
        request: ServerRequest<Starling_V1_GetDestination>, context: ServerContext
    ) async throws -> StreamingServerResponse<Starling_V1_Update> {
        let target = try target(request)
        let resume = Resume(request.message)
        if let resume { await index.catchUp(to: resume.version, within: Self.catchUpLimit) }
        let changes = index.changes()
        return StreamingServerResponse { writer in
            var sent = Set<Endpoint>()
            // The `exists` value of the last NoEndpoints sent; nil while endpoints are known.
            var lastNotice: Bool? = nil
            var first = true
            for await _ in changes {
                // One snapshot per wake-up: the answer and the version it is stamped with agree.
                let snapshot = index.snapshot
                let current: Set<Endpoint>? =
                    switch target {
                    case .service(let authority): snapshot.endpoints(of: authority)
                    case .address(let host, let port): snapshot.endpoints(atAddress: host, port: port)
                    }
                let now = current ?? []
                let digest = Self.digest(current)
                var updates: [Starling_V1_Update] = []
                if first, let resume {
                    if resume.digest == digest {
                        // The proxy holds exactly this state: confirm it and go on with changes.
                        updates.append(.with { $0.resumed = .init() })
                        sent = now
                        lastNotice = now.isEmpty ? current != nil : nil
                    }
                    Self.countResume(kept: resume.digest == digest, stream: "Get")
                }
                first = false
                let removed = sent.subtracting(now)
                let added = now.subtracting(sent)
                if !removed.isEmpty {
                    updates.append(.with { $0.remove = .with { $0.addrs = removed.map(Self.address) } })
                }
                if !added.isEmpty {
                    updates.append(.with { $0.add = .with { $0.addrs = added.map(Self.address) } })
                }
                sent = now
                if !now.isEmpty {
                    lastNotice = nil
                } else if lastNotice != (current != nil) {
                    updates.append(.with { $0.noEndpoints = .with { $0.exists = current != nil } })
                    lastNotice = current != nil
                }
                // The last message of a batch names the version and the whole state after the
                // batch: a proxy resumes only from a position it fully received (a batch cut off
                // midway leaves it at the previous one, and its resume is answered in full).
                if !updates.isEmpty {
                    updates[updates.count - 1].version = snapshot.version
                    updates[updates.count - 1].digest = digest
                }
                for update in updates {
                    try await writer.write(update)
                }
            }
            return [:]
        }
    }

    /// A proxy's request to resume a stream it lost.
    struct Resume: Sendable {
        var version: Int64
        var digest: Data

        init?(_ message: Starling_V1_GetDestination) {
            guard message.resumeVersion > 0 else { return nil }
            version = message.resumeVersion
            digest = message.resumeDigest
        }
    }

    /// How long a resumed stream waits for this replica to reach the version the proxy holds
    /// before answering with what it has.
    static let catchUpLimit: Duration = .seconds(3)

    /// A resumed stream's first answer: the proxy's state confirmed (`kept`) or sent again.
    static func countResume(kept: Bool, stream: String) {
        Counter(
            label: "starling_destination_resumes_total",
            dimensions: [("outcome", kept ? "kept" : "resent"), ("stream", stream)]
        ).increment()
    }

    /// A digest of a whole profile (version and digest unset): its binary form with map entries
    /// in key order, so every replica computes the same one.
    static func digest(_ profile: Starling_V1_DestinationProfile) -> Data {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        guard let bytes: Data = try? profile.serializedBytes(options: options) else { return Data() }
        return Data(SHA256.hash(data: bytes))
    }

    /// A digest of a whole answer of `Get`: absent, present with no endpoints, or its endpoints.
    static func digest(_ endpoints: Set<Endpoint>?) -> Data {
        guard let endpoints else { return Data(SHA256.hash(data: Data("absent".utf8))) }
        var hasher = SHA256()
        hasher.update(data: Data("exists\n".utf8))
        for line in endpoints.map(Self.canonicalLine).sorted() {
            hasher.update(data: Data(line.utf8))
        }
        return Data(hasher.finalize())
    }

    private static func canonicalLine(_ e: Endpoint) -> String {
        let labels = e.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return "\(e.ip)|\(e.port)|\(e.identity ?? "")|\(e.opaque)|\(e.authorityOverride ?? "")|\(labels)\n"
    }

    func getProfile(
        request: ServerRequest<Starling_V1_GetDestination>, context: ServerContext
    ) async throws -> StreamingServerResponse<Starling_V1_DestinationProfile> {
        let target = try target(request)
        let resume = Resume(request.message)
        if let resume { await index.catchUp(to: resume.version, within: Self.catchUpLimit) }
        let changes = index.changes()
        return StreamingServerResponse { writer in
            var last: Starling_V1_DestinationProfile?
            var first = true
            for await _ in changes {
                let snapshot = index.snapshot
                let profile: Starling_V1_DestinationProfile =
                    switch target {
                    case .service(let authority): profile(for: authority, in: snapshot)
                    case .address(let host, let port): addressProfile(host: host, port: port)
                    }
                guard profile != last else { continue }
                let digest = Self.digest(profile)
                var message = profile
                if first, let resume {
                    Self.countResume(kept: resume.digest == digest, stream: "GetProfile")
                    if resume.digest == digest {
                        // The proxy holds exactly this profile: confirm it, send nothing else.
                        message = .with { $0.resumed = true }
                    }
                }
                first = false
                message.version = snapshot.version
                message.digest = digest
                try await writer.write(message)
                last = profile
            }
            return [:]
        }
    }

    func profile(for authority: ServiceAuthority, in snapshot: DestinationIndex.Snapshot) -> Starling_V1_DestinationProfile {
        var profile = Self.defaultProfile
        profile.fullyQualifiedName = ServiceAuthority(service: authority.service, namespace: authority.namespace, port: nil)
            .fullyQualified(clusterDomain: clusterDomain)
        profile.dstOverrides = snapshot.backends(of: authority, clusterDomain: clusterDomain).map { backend in
            .with {
                $0.authority = backend.authority
                $0.weight = backend.weight
            }
        }
        if let resource = snapshot.services[authority.namespace]?[authority.service],
            let service = try? ServiceSpec(resource),
            let port = snapshot.servicePort(service, authority.port)
        {
            profile.opaqueProtocol = DestinationIndex.Snapshot.isOpaque(port)
        }
        profile.routes = Self.routeMatches(of: authority, in: snapshot)
        if let resource = snapshot.services[authority.namespace]?[authority.service] {
            profile.exported = resource.metadata.labels[MirrorLabels.exported] == "true"
            profile.mirrored = resource.metadata.labels[MirrorLabels.mirroredService] == "true"
        }
        return profile
    }

    /// Every match of the HTTPRoutes (in the service's namespace) whose parent is the service,
    /// named by their route, in the routes' name order (the proxy sorts by precedence).
    static func routeMatches(of authority: ServiceAuthority, in snapshot: DestinationIndex.Snapshot) -> [Starling_V1_RouteMatch] {
        var matches: [Starling_V1_RouteMatch] = []
        let routes = (snapshot.routes[authority.namespace] ?? [:]).values.sorted { $0.metadata.name < $1.metadata.name }
        for resource in routes {
            guard let route = try? HTTPRouteSpec(resource),
                route.parentRefs.contains(where: { $0.isService && $0.name == authority.service && ($0.namespace ?? authority.namespace) == authority.namespace })
            else { continue }
            for rule in route.rules {
                for match in rule.requestMatches {
                    matches.append(.with {
                        $0.route = resource.metadata.name
                        $0.pathType = match.pathType.rawValue
                        $0.path = match.path
                        $0.method = match.method ?? ""
                        $0.headers = match.headers
                    })
                }
            }
        }
        return matches
    }

    /// A workload address has no split and no route: the defaults only.
    func addressProfile(host: String, port: Int) -> Starling_V1_DestinationProfile {
        var profile = Self.defaultProfile
        profile.fullyQualifiedName = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return profile
    }

    /// Request timeout and retry budget every profile starts from.
    static let defaultProfile = Starling_V1_DestinationProfile.with {
        $0.timeoutMs = 10_000
        $0.retryBudget = .with {
            $0.retryRatio = 0.2
            $0.minRetriesPerSecond = 10
            $0.ttlMs = 10_000
        }
    }

    static func address(_ e: Endpoint) -> Starling_V1_WeightedAddr {
        .with {
            $0.ip = e.ip
            $0.port = UInt32(e.port)
            $0.weight = 10_000
            $0.identity = e.identity ?? ""
            $0.protocolHint = e.opaque ? .opaque : (e.identity == nil ? .unknown : .h2)
            $0.metricLabels = e.labels
            $0.authorityOverride = e.authorityOverride ?? ""
        }
    }
}
