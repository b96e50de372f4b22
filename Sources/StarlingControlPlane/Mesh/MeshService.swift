import Foundation
@preconcurrency import Crypto
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import StarlingIdentity
import StarlingMulticluster

/// Join tokens, workload registration with heartbeats, and the controller's status.
struct MeshService: Starling_V1_Mesh.ServiceProtocol {
    let store: any ResourceStore
    let auth: Authenticator
    let tokenKey: SymmetricKey
    /// Signs tap tickets: the API's own key, which every proxy pins with the API certificate.
    let tapKey: P256.Signing.PrivateKey
    let identity: MeshIdentityState
    let index: DestinationIndex
    let leases: WorkloadLeases
    let multicluster: MulticlusterRegistry
    let configuration: ControllerConfiguration
    let logger: Logger
    /// This replica's clock against the database's: a token it stamped with a skewed clock
    /// would be refused by the other replicas ("issued in the future").
    var clock: ReplicaClock? = nil
    /// The proxies' heartbeat reports of their certificates, for `check`.
    var reports = CertificateReports()

    static let maximumTokenTTL: Int64 = 365 * 86400

    static func milliseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }

    func createToken(
        request: ServerRequest<Starling_V1_CreateTokenRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_CreateTokenResponse> {
        try auth.requireAdmin(request.metadata, for: "token create")
        if let refusal = clock?.refusal { throw RPCError(code: .unavailable, message: refusal) }
        let m = request.message
        guard Names.isDNSLabel(m.namespace) else {
            throw RPCError(code: .invalidArgument, message: "namespace \"\(m.namespace)\" is not a valid name (lowercase letters, digits and '-', at most 63)")
        }
        guard Names.isDNSLabel(m.serviceAccount) else {
            throw RPCError(code: .invalidArgument, message: "service account \"\(m.serviceAccount)\" is not a valid name (lowercase letters, digits and '-', at most 63)")
        }
        let isLink = m.audience == "link"
        guard m.audience.isEmpty || m.audience == "join" || isLink else {
            throw RPCError(code: .invalidArgument, message: "audience \"\(m.audience)\" is not join or link")
        }
        if !m.service.isEmpty {
            guard !isLink else {
                throw RPCError(code: .invalidArgument, message: "a link credential cannot be bound to a service (--service is for join tokens)")
            }
            guard Names.isDNSLabel(m.service) else {
                throw RPCError(code: .invalidArgument, message: "service \"\(m.service)\" is not a valid name (lowercase letters, digits and '-', at most 63)")
            }
        }
        let ttl = m.ttlSeconds == 0 ? (isLink ? 30 * 86400 : 86400) : m.ttlSeconds
        guard ttl > 0, ttl <= Self.maximumTokenTTL else {
            throw RPCError(code: .invalidArgument, message: "ttl \(ttl)s is out of range (1s to 8760h)")
        }
        let now = Date()
        let claims = JoinToken.Claims(
            namespace: m.namespace, serviceAccount: m.serviceAccount, lifetime: TimeInterval(ttl), now: now,
            audience: isLink ? JoinToken.Audience.link : JoinToken.Audience.join, cluster: configuration.clusterName,
            service: m.service.isEmpty ? nil : m.service)
        var response = Starling_V1_CreateTokenResponse()
        response.token = JoinToken.sign(claims, key: tokenKey)
        response.expiresAt = claims.expiresAt
        var metadata: Logger.Metadata = ["namespace": "\(m.namespace)", "service-account": "\(m.serviceAccount)", "ttl": "\(ttl)s"]
        if let service = claims.service { metadata["service"] = "\(service)" }
        logger.info(isLink ? "link credential created" : "join token created", metadata: metadata)
        return ServerResponse(message: response)
    }

    /// A linked cluster renews its own credential while it is valid: same grant, same lifetime,
    /// a new id. An expired credential is refused by `authenticate`; the remote cluster's admin
    /// must then make a new link.
    func renewLinkCredential(
        request: ServerRequest<Starling_V1_RenewLinkCredentialRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_CreateTokenResponse> {
        guard case .link(let cluster, let held) = try auth.authenticate(request.metadata) else {
            throw RPCError(code: .permissionDenied, message: "only a link credential can be renewed this way; make join tokens with `starling token create`")
        }
        if let refusal = clock?.refusal { throw RPCError(code: .unavailable, message: refusal) }
        let lifetime = min(max(held.lifetime, 60), Self.maximumTokenTTL)
        let claims = JoinToken.Claims(
            namespace: held.namespace, serviceAccount: held.serviceAccount, lifetime: TimeInterval(lifetime),
            audience: JoinToken.Audience.link, cluster: configuration.clusterName)
        var response = Starling_V1_CreateTokenResponse()
        response.token = JoinToken.sign(claims, key: tokenKey)
        response.expiresAt = claims.expiresAt
        logger.info("link credential renewed", metadata: [
            "cluster": "\(cluster)", "expires-at": "\(claims.expiry.formatted(.iso8601))", "peer": "\(context.remotePeer)",
        ])
        return ServerResponse(message: response)
    }

    func register(
        request: ServerRequest<Starling_V1_RegisterRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_RegisterResponse> {
        guard case .workload(let namespace, let serviceAccount, let boundService) = try auth.authenticate(request.metadata) else {
            throw RPCError(code: .permissionDenied, message: "register needs a join token: it names the workload's namespace and service account")
        }
        let m = request.message
        guard Names.isDNSLabel(m.name) else {
            throw RPCError(code: .invalidArgument, message: "workload name \"\(m.name)\" is not a valid name (lowercase letters, digits and '-', at most 63)")
        }
        let trustDomain = identity.configuration?.trustDomain ?? "cluster.local"
        let meshIdentity = MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain)
        var spec = JSONObject()
        spec["address"] = .string(m.address)
        spec["ports"] = .array(m.ports.map { p in
            var o = JSONObject()
            if !p.name.isEmpty { o["name"] = .string(p.name) }
            o["port"] = .int(Int64(p.port))
            if p.appPort != 0 { o["appPort"] = .int(Int64(p.appPort)) }
            if !p.protocol.isEmpty { o["protocol"] = .string(p.protocol) }
            return .object(o)
        })
        spec["serviceAccount"] = .string(serviceAccount)
        spec["identity"] = .string(meshIdentity.dnsName)
        spec["ready"] = .bool(true)
        spec["cluster"] = .string(configuration.clusterName)
        var annotations = [WorkloadLeases.leasedAnnotation: "true"]
        if m.adminPort != 0 {
            guard m.adminPort <= 65535 else {
                throw RPCError(code: .invalidArgument, message: "admin port \(m.adminPort) of workload \(namespace)/\(m.name) is not 1–65535")
            }
            annotations[ProxyAdminEndpoints.adminPortAnnotation] = String(m.adminPort)
        }
        if !m.defaultInboundPolicy.isEmpty {
            guard AccessPolicy.parse(m.defaultInboundPolicy) != nil else {
                throw RPCError(
                    code: .invalidArgument,
                    message: "default inbound policy \"\(m.defaultInboundPolicy)\" of workload \(namespace)/\(m.name) is not one of \(AccessPolicy.acceptedList)")
            }
            annotations[AccessPolicy.defaultInboundPolicyAnnotation] = m.defaultInboundPolicy
        }
        let resource = Resource(
            apiVersion: "starling.io/v1alpha1", kind: "Workload",
            metadata: ObjectMeta(name: m.name, namespace: namespace, labels: m.labels, annotations: annotations),
            body: JSONObject([("spec", .object(spec))]))
        do {
            try ResourceValidator.validate(resource)
        } catch {
            throw RPCError(code: .invalidArgument, message: "workload \(namespace)/\(m.name): \(error.description)")
        }
        let existing = try await StoreCall.run("register", { try await store.get(resource.key) })
        // A workload name belongs to the identity that registered it: another service account of
        // the namespace must not re-register it (its proxy follows that name's inbound policy),
        // nor take over one an administrator applied.
        if let existing {
            try requireOwner(existing, caller: meshIdentity, attempt: "register under its name")
        }
        if let boundService {
            let services = try await StoreCall.run("register") { try await store.list(kind: "Service", namespace: namespace, selector: nil) }
            try requireOnlyService(
                boundService, picks: m.labels, workload: "\(namespace)/\(m.name)", namespace: namespace, services: services,
                action: "register")
            // Nor may it relabel a workload of its identity that serves another service away from it.
            if let existing {
                try requireOnlyService(
                    boundService, picks: existing.metadata.labels, workload: "\(namespace)/\(m.name)", namespace: namespace,
                    services: services, action: "re-register")
            }
        }
        var toApply = [resource]
        if try await StoreCall.run("register", { try await store.get(ResourceKey(kind: "Namespace", namespace: nil, name: namespace)) }) == nil {
            toApply.insert(Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: namespace)), at: 0)
        }
        _ = try await StoreCall.run("register") { try await store.apply(toApply) }
        try await StoreCall.run("register") { try await leases.register(resource.key) }
        logger.info("workload registered", metadata: ["workload": "\(namespace)/\(m.name)", "address": "\(m.address)", "identity": "\(meshIdentity)"])
        var response = Starling_V1_RegisterResponse()
        response.namespace = namespace
        response.name = m.name
        response.heartbeatIntervalMs = Self.milliseconds(configuration.heartbeatInterval)
        response.leaseMs = Self.milliseconds(configuration.workloadLease)
        return ServerResponse(message: response)
    }

    /// A token bound to `service` registers no workload that another service of the namespace
    /// selects: it would receive that service's traffic. An alias is the exception: a service
    /// whose selector is part of the bound service's own (`{app: web}` beside web's
    /// `{app: web, tier: front}`) already routes to every workload of the bound service.
    private func requireOnlyService(
        _ service: String, picks labels: [String: String], workload: String, namespace: String, services: [Resource],
        action: String
    ) throws(RPCError) {
        let bound = services.first { $0.metadata.name == service }
            .flatMap { try? ServiceSpec($0).effectiveSelector(serviceName: service) }
        let others = services.filter { resource in
            guard resource.metadata.name != service, let spec = try? ServiceSpec(resource) else { return false }
            let selector = spec.effectiveSelector(serviceName: resource.metadata.name)
            guard spec.labelSelector(serviceName: resource.metadata.name).matches(labels) else { return false }
            let alias = bound.map { bound in selector.allSatisfy { bound[$0.key] == $0.value } } ?? false
            return !alias
        }.map(\.metadata.name).sorted()
        guard others.isEmpty else {
            logger.warning("\(action) refused: labels picked by another service", metadata: [
                "workload": "\(workload)", "token-service": "\(service)", "picked-by": "\(others.joined(separator: ","))",
            ])
            let pickedBy = "service\(others.count == 1 ? "" : "s") \(others.joined(separator: ", ")) of namespace \(namespace)"
            let hint = action == "register"
                ? "register with labels only \(service) selects, or use a token for that service"
                : "it cannot \(action) that workload; use a token for that service"
            throw RPCError(
                code: .permissionDenied,
                message: "the join token is bound to service \(service), but the labels of workload \(workload) are picked by \(pickedBy); \(hint)")
        }
    }

    func heartbeat(
        request: ServerRequest<Starling_V1_HeartbeatRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_HeartbeatResponse> {
        // From the destination index, not the store: heartbeats come every few seconds from every
        // workload. One the index does not have yet is unknown to the lease too, or was just
        // registered by this very proxy.
        let snapshot = index.snapshot
        let (key, _) = try await requireActsOnOwn(
            request.metadata, request.message.namespace, request.message.name, action: "heartbeat",
            existing: { snapshot.workloads[$0.namespace ?? ""]?[$0.name] },
            services: { Array((snapshot.services[$0] ?? [:]).values) })
        let m = request.message
        let report = m.certificateIssuerSha256.isEmpty && m.trustAnchorsSha256.isEmpty
            ? nil : CertificateReport(issuer: m.certificateIssuerSha256, trustAnchors: m.trustAnchorsSha256)
        var response = Starling_V1_HeartbeatResponse()
        response.known = try await StoreCall.run("heartbeat") { try await leases.heartbeat(key, report: report) }
        if response.known, let report, !reports.isShared {
            reports.record(key, report)
        }
        return ServerResponse(message: response)
    }

    func deregister(
        request: ServerRequest<Starling_V1_DeregisterRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_DeregisterResponse> {
        let store = store
        let (key, exists) = try await requireActsOnOwn(
            request.metadata, request.message.namespace, request.message.name, action: "deregister",
            existing: { key in try await StoreCall.run("deregister") { try await store.get(key) } },
            services: { namespace in
                try await StoreCall.run("deregister") { try await store.list(kind: "Service", namespace: namespace, selector: nil) }
            })
        try await StoreCall.run("deregister") { try await leases.release(key) }
        reports.forget(key)
        // Nothing was there when it was checked: nothing is deleted (another identity may be
        // registering the name meanwhile).
        guard exists else { return ServerResponse(message: Starling_V1_DeregisterResponse()) }
        if try await StoreCall.run("deregister", { try await store.delete(key) }) != nil {
            logger.info("workload deregistered", metadata: ["workload": "\(key)"])
        }
        return ServerResponse(message: Starling_V1_DeregisterResponse())
    }

    /// A join token heartbeats or deregisters only a workload it could register: one of its own
    /// namespace, registered by its own identity and, for a token bound to a service, one no
    /// other service selects. Otherwise any token of the namespace could take another service's
    /// endpoints away (deregister) or keep its dead ones in rotation (heartbeat). A workload that
    /// does not exist passes (`exists` false): a heartbeat for it answers "unknown" and the proxy
    /// registers again. The admin credential acts on any workload.
    private func requireActsOnOwn(
        _ metadata: Metadata, _ namespace: String, _ name: String, action: String,
        existing: (ResourceKey) async throws -> Resource?, services: (String) async throws -> [Resource]
    ) async throws -> (key: ResourceKey, exists: Bool) {
        let key = ResourceKey(kind: "Workload", namespace: namespace, name: name)
        switch try auth.authenticate(metadata) {
        case .admin:
            return (key, true)
        case .link:
            throw RPCError(code: .permissionDenied, message: "a link credential cannot act on workloads")
        case .workload(let ns, let serviceAccount, let boundService):
            guard ns == namespace else {
                throw RPCError(code: .permissionDenied, message: "a join token for namespace \(ns) cannot act on workloads in \(namespace)")
            }
            guard let workload = try await existing(key) else { return (key, false) }
            let trustDomain = identity.configuration?.trustDomain ?? "cluster.local"
            try requireOwner(
                workload, caller: MeshIdentity(namespace: ns, serviceAccount: serviceAccount, trustDomain: trustDomain),
                attempt: "\(action) it")
            if let boundService {
                try requireOnlyService(
                    boundService, picks: workload.metadata.labels, workload: "\(namespace)/\(name)", namespace: namespace,
                    services: try await services(namespace), action: action)
            }
            return (key, true)
        }
    }

    /// `workload` belongs to `caller`: its identity names the caller's namespace and service
    /// account (whatever trust domain it was spelled with). One an administrator applied without
    /// an identity belongs to no join token.
    private func requireOwner(_ workload: Resource, caller: MeshIdentity, attempt: String) throws(RPCError) {
        let name = "\(workload.metadata.namespace ?? "")/\(workload.metadata.name)"
        let owner = (try? WorkloadSpec(workload))?.identity
        let ownerIdentity = owner.flatMap { MeshIdentity(dnsName: $0) }
        if let ownerIdentity, ownerIdentity.namespace == caller.namespace, ownerIdentity.serviceAccount == caller.serviceAccount {
            return
        }
        logger.warning("refused: a workload of another identity", metadata: [
            "workload": "\(name)", "caller": "\(caller)", "owner": "\(owner ?? "none (applied)")", "attempt": "\(attempt)",
        ])
        throw RPCError(
            code: .permissionDenied,
            message: owner.map { "workload \(name) is registered by \($0); \(caller) cannot \(attempt)" }
                ?? "workload \(name) was applied by an administrator, not registered by a proxy; \(caller) cannot \(attempt) (an administrator removes it with `starling delete workload \(workload.metadata.name) -n \(workload.metadata.namespace ?? "default")`)")
    }

    func status(
        request: ServerRequest<Starling_V1_StatusRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_StatusResponse> {
        try auth.requireAdmin(request.metadata, for: "status")
        var response = Starling_V1_StatusResponse()
        response.clusterName = configuration.clusterName
        response.version = StarlingVersion.current
        response.nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        response.checks = await StatusChecks(store: store, identity: identity, index: index, reports: reports).run()
        response.storeVersion = (try? await store.currentVersion()) ?? 0
        response.trustAnchorsPem = identity.configuration?.trustAnchorsPEM ?? ""
        return ServerResponse(message: response)
    }
}

extension MeshService {
    func gateways(
        request: ServerRequest<Starling_V1_GatewaysRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_GatewaysResponse> {
        try auth.requireAdmin(request.metadata, for: "multicluster gateways")
        let now = ContinuousClock.now
        var response = Starling_V1_GatewaysResponse()
        response.gateways = multicluster.statuses().map { s in
            .with {
                $0.cluster = s.cluster
                $0.alive = s.health.alive
                $0.numServices = UInt32(s.mirroredServices)
                $0.latencyP50Ms = s.latencies.percentileMilliseconds(50, now: now) ?? -1
                $0.latencyP95Ms = s.latencies.percentileMilliseconds(95, now: now) ?? -1
                $0.latencyP99Ms = s.latencies.percentileMilliseconds(99, now: now) ?? -1
                $0.gatewayAddress = s.gatewayAddress
                $0.mirrorState = s.mirrorState
                $0.lastSync = Int64(s.lastSync?.timeIntervalSince1970 ?? 0)
                $0.credentialExpiresAt = Int64(s.credentialExpiresAt?.timeIntervalSince1970 ?? 0)
                $0.lastProbeError = s.lastProbeError ?? ""
                $0.credentialRenewalError = s.credentialRenewalError ?? ""
                $0.credentialRenewsAt = Int64(s.credentialRenewsAt?.timeIntervalSince1970 ?? 0)
            }
        }
        return ServerResponse(message: response)
    }
}

extension MeshService {
    func tapTargets(
        request: ServerRequest<Starling_V1_TapTargetsRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_TapTargetsResponse> {
        try auth.requireAdmin(request.metadata, for: "tap")
        let namespace = request.message.namespace
        let cluster = configuration.clusterName
        let now = Date()
        var response = Starling_V1_TapTargetsResponse()
        response.cluster = cluster
        response.expiresAt = Int64(now.timeIntervalSince1970.rounded(.down)) + Int64(TapTicket.lifetime)
        // Each proxy gets a ticket of its own: one read off the wire (the admin port is plain
        // HTTP) or sent to an address a workload registered opens no other proxy's tap.
        func target(namespace: String, workload: String, identity: String, address: String) throws -> Starling_V1_TapTarget {
            let claims = TapTicket.Claims(cluster: cluster, subject: identity, address: address, now: now)
            let ticket: String
            do {
                ticket = try TapTicket.sign(claims, key: tapKey)
            } catch {
                throw RPCError(code: .internalError, message: "signing a tap ticket failed: \(error)")
            }
            return .with {
                $0.namespace = namespace
                $0.workload = workload
                $0.identity = identity
                $0.adminAddress = address
                $0.ticket = ticket
            }
        }
        let snapshot = index.snapshot
        for entry in ProxyAdminEndpoints.list(snapshot, namespace: namespace.isEmpty ? nil : namespace) {
            guard let identity = entry.spec.identity else { continue }
            response.targets.append(try target(namespace: entry.namespace, workload: entry.name, identity: identity, address: entry.address))
        }
        if namespace.isEmpty || namespace == MirrorLabels.namespace {
            let trustDomain = identity.configuration?.trustDomain ?? "cluster.local"
            let gatewayIdentity = MeshIdentity(
                namespace: MirrorLabels.namespace, serviceAccount: MirrorLabels.gatewayServiceAccount, trustDomain: trustDomain)
            for gateway in ProxyAdminEndpoints.gateways(snapshot, defaultHost: configuration.apiHost) {
                response.targets.append(
                    try target(
                        namespace: MirrorLabels.namespace, workload: MirrorLabels.gatewayServiceName,
                        identity: gatewayIdentity.dnsName, address: gateway))
            }
        }
        logger.info("tap tickets issued", metadata: [
            "namespace": "\(namespace.isEmpty ? "*" : namespace)", "targets": "\(response.targets.count)",
        ])
        return ServerResponse(message: response)
    }
}

/// DNS-1123 label checks for names that arrive in requests.
enum Names {
    static func isDNSLabel(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 63, let first = s.first, let last = s.last else { return false }
        guard first.isLetter || first.isNumber, last.isLetter || last.isNumber else { return false }
        return s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
    }
}

enum StarlingVersion {
    static let current = "0.1.0"
}
