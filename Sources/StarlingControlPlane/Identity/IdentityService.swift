import Foundation
import GRPCCore
import Logging
import Metrics
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import StarlingIdentity
import StarlingMulticluster
import SwiftASN1
import X509

/// Signs workload certificates: only for the identity the caller's join token grants, with a
/// CSR whose signature verifies, for the mesh's issuance lifetime, at most at the rate limit of
/// that identity.
struct IdentityService: Starling_V1_Identity.ServiceProtocol {
    let identity: MeshIdentityState
    let auth: Authenticator
    let logger: Logger
    /// Overrides the MeshConfig's `issuanceLifetime` (tests).
    let lifetime: TimeInterval?
    /// This replica's clock against the database's; nil for a controller on its own store.
    let clock: ReplicaClock?
    /// Certificates per identity per second, on this replica.
    let rateLimiter: CertifyRateLimiter
    /// Where a gateway's certificate is noted for `check` (gateways send no heartbeat).
    let reports: CertificateReports?

    init(
        identity: MeshIdentityState, auth: Authenticator, logger: Logger, lifetime: TimeInterval? = nil,
        clock: ReplicaClock? = nil, rateLimit: CertifyRateLimit = .standard, reports: CertificateReports? = nil
    ) {
        self.reports = reports
        self.identity = identity
        self.auth = auth
        self.logger = logger
        self.lifetime = lifetime
        self.clock = clock
        self.rateLimiter = CertifyRateLimiter(rateLimit)
    }

    func certify(
        request: ServerRequest<Starling_V1_CertifyRequest>, context: ServerContext
    ) async throws -> ServerResponse<Starling_V1_CertifyResponse> {
        var metadata = request.metadata
        if !request.message.token.isEmpty {
            metadata.replaceOrAddString("Bearer \(request.message.token)", forKey: "authorization")
        }
        let caller = try auth.authenticate(metadata)
        if let refusal = clock?.refusal {
            throw RPCError(code: .unavailable, message: refusal)
        }
        guard let configuration = identity.configuration else {
            throw RPCError(code: .failedPrecondition, message: identity.problem ?? "identity is not configured")
        }
        guard let requested = MeshIdentity(dnsName: request.message.identity) else {
            throw RPCError(code: .invalidArgument, message: "\"\(request.message.identity)\" is not a mesh identity (expected SA.NS.serviceaccount.identity.starling.TRUST_DOMAIN)")
        }
        let granted: MeshIdentity
        switch caller {
        case .admin:
            granted = requested
        case .workload(let namespace, let serviceAccount, _):
            granted = MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: configuration.trustDomain)
        case .link:
            throw RPCError(code: .permissionDenied, message: "a link credential cannot obtain certificates")
        }
        guard requested == granted, requested.trustDomain == configuration.trustDomain else {
            logger.warning("certify refused: identity not granted", metadata: ["requested": "\(requested)", "granted": "\(granted)", "peer": "\(context.remotePeer)"])
            throw RPCError(code: .permissionDenied, message: "the token grants \(granted.dnsName), not \(requested.dnsName)")
        }
        // Admin callers (the CLI, the controller's own gateway) are not limited; workloads are,
        // by the identity their token grants, before any signing work.
        if case .workload = caller, let refusal = rateLimiter.acquire(granted.dnsName) {
            Counter(label: "starling_certify_rate_limited_total").increment()
            if let count = refusal.toLog {
                logger.warning("certify refused: rate limit", metadata: ["identity": "\(granted)", "refused": "\(count)"])
            }
            throw RPCError(
                code: .resourceExhausted,
                message: "too many certificate requests for \(granted.dnsName) (limit \(Int(rateLimiter.limit.perSecond))/s, burst \(Int(rateLimiter.limit.burst))); retry in \(refusal.retryAfter)")
        }
        let chain: [Certificate]
        do {
            chain = try configuration.issuer.certify(
                csrDER: Array(request.message.certificateSigningRequest), granted: granted, lifetime: lifetime ?? TimeInterval(configuration.issuanceLifetime.components.seconds), now: Date())
        } catch {
            logger.warning("certify refused", metadata: ["identity": "\(granted)", "error": "\(error.message)"])
            throw RPCError(code: error.code == .csrSignatureInvalid || error.code == .identityNotGranted ? .permissionDenied : .invalidArgument, message: error.message)
        }
        var response = Starling_V1_CertifyResponse()
        response.chain = try chain.map { cert in
            var serializer = DER.Serializer()
            try serializer.serialize(cert)
            return Data(serializer.serializedBytes)
        }
        response.validUntil = Int64(chain.first?.notValidAfter.timeIntervalSince1970 ?? 0)
        response.trustAnchorsPem = configuration.trustAnchorsPEM
        if let reports, granted.namespace == MirrorLabels.namespace, granted.serviceAccount == MirrorLabels.gatewayServiceAccount,
            let leaf = chain.first
        {
            reports.recordIssued(
                "gateway at \(Self.host(ofPeer: context.remotePeer))",
                .init(issuer: configuration.issuerCertificate.sha256Fingerprint, trustAnchors: configuration.trust.fingerprint),
                notValidAfter: leaf.notValidAfter, validity: .seconds(max(0, leaf.notValidAfter.timeIntervalSinceNow)))
        }
        logger.debug("certified", metadata: ["identity": "\(granted)"])
        return ServerResponse(message: response)
    }

    /// The host of a gRPC peer description (`ipv4:127.0.0.1:51234`, `ipv6:[::1]:51234`).
    static func host(ofPeer peer: String) -> String {
        var rest = Substring(peer)
        for prefix in ["ipv4:", "ipv6:"] where rest.hasPrefix(prefix) { rest = rest.dropFirst(prefix.count) }
        guard let parts = HostPort.split(rest), parts.port.map({ HostPort.port($0, in: 0...65535) != nil }) ?? true else {
            return String(rest)
        }
        return String(parts.host)
    }
}
