import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import StarlingIdentity
import SwiftASN1
import X509

/// Signs workload certificates: only for the identity the caller's join token grants, with a
/// CSR whose signature verifies, valid for 24 hours.
struct IdentityService: Starling_V1_Identity.ServiceProtocol {
    let identity: MeshIdentityState
    let auth: Authenticator
    let logger: Logger
    /// Overrides the MeshConfig's `issuanceLifetime` (tests).
    let lifetime: TimeInterval?
    /// This replica's clock against the database's; nil for a controller on its own store.
    let clock: ReplicaClock?

    init(
        identity: MeshIdentityState, auth: Authenticator, logger: Logger, lifetime: TimeInterval? = nil,
        clock: ReplicaClock? = nil
    ) {
        self.identity = identity
        self.auth = auth
        self.logger = logger
        self.lifetime = lifetime
        self.clock = clock
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
        case .workload(let namespace, let serviceAccount):
            granted = MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: configuration.trustDomain)
        case .link:
            throw RPCError(code: .permissionDenied, message: "a link credential cannot obtain certificates")
        }
        guard requested == granted, requested.trustDomain == configuration.trustDomain else {
            logger.warning("certify refused: identity not granted", metadata: ["requested": "\(requested)", "granted": "\(granted)", "peer": "\(context.remotePeer)"])
            throw RPCError(code: .permissionDenied, message: "the token grants \(granted.dnsName), not \(requested.dnsName)")
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
        logger.debug("certified", metadata: ["identity": "\(granted)"])
        return ServerResponse(message: response)
    }
}
