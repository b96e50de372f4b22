@preconcurrency import Crypto
import Foundation
import GRPCCore
import StarlingIdentity

/// Who is calling the API. Every RPC authenticates first; nobody else can read or write.
enum Caller: Sendable {
    /// Holds the cluster's admin credential (from the context file).
    case admin
    /// A workload holding a join token for one namespace and service account, and perhaps bound
    /// to one service of that namespace.
    case workload(namespace: String, serviceAccount: String, service: String?)
    /// A linked cluster's service mirror holding a link credential: it may list and watch
    /// exported services, and renew the credential before it expires; nothing else.
    case link(cluster: String, claims: JoinToken.Claims)
}

/// Turns `authorization: Bearer TOKEN` metadata into a `Caller`, or refuses the call.
struct Authenticator: Sendable {
    let adminToken: String
    let tokenKey: SymmetricKey
    let now: @Sendable () -> Date

    public init(adminToken: String, tokenKey: SymmetricKey, now: @escaping @Sendable () -> Date = { Date() }) {
        self.adminToken = adminToken
        self.tokenKey = tokenKey
        self.now = now
    }

    func authenticate(_ metadata: Metadata) throws(RPCError) -> Caller {
        var bearer: String?
        for case .string(let value) in metadata["authorization"] {
            if value.hasPrefix("Bearer ") { bearer = String(value.dropFirst("Bearer ".count)) }
        }
        guard let token = bearer, !token.isEmpty else {
            throw RPCError(code: .unauthenticated, message: "missing credential: send `authorization: Bearer TOKEN` (the admin token from your context, or a join token)")
        }
        if constantTimeEqual(token, adminToken) { return .admin }
        do throws(IdentityError) {
            let claims = try JoinToken.verify(
                token, key: tokenKey, audiences: [JoinToken.Audience.join, JoinToken.Audience.link], now: now())
            if claims.audience == JoinToken.Audience.link { return .link(cluster: claims.serviceAccount, claims: claims) }
            return .workload(namespace: claims.namespace, serviceAccount: claims.serviceAccount, service: claims.service)
        } catch {
            throw RPCError(code: .unauthenticated, message: "credential refused: \(error.message)")
        }
    }

    /// Authenticates and requires the admin credential.
    func requireAdmin(_ metadata: Metadata, for action: String) throws(RPCError) {
        guard case .admin = try authenticate(metadata) else {
            throw RPCError(code: .permissionDenied, message: "\(action) needs the cluster's admin credential; a join token cannot do it")
        }
    }

    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
