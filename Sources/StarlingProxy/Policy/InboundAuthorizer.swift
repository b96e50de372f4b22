package import Foundation
public import Logging
import Metrics
public import StarlingCore
import Synchronization

/// The inbound policy a proxy enforces now, and the decisions it takes with it: every HTTP
/// request and every opaque TCP connection asks here. A new policy (from the Policy stream)
/// applies to the next request at once; open opaque connections are checked again and closed
/// if they are no longer allowed.
///
/// Decisions are counted in `inbound_{http,tcp}_authz_{allow,deny}_total{server,route,policy}`;
/// an audit server's would-be denials in `inbound_{http,tcp}_authz_would_deny_total`. Each
/// denial and each would-be denial is logged once, with the reason.
public final class InboundAuthorizer: Sendable {
    private struct State {
        var evaluator: InboundPolicyEvaluator
        var received = false
        var watchers: [UUID: @Sendable () -> Void] = [:]
    }

    private let state: Mutex<State>
    private let logger: Logger

    /// - Parameter initial: the policy until the controller's arrives (the workload's own default
    ///   inbound policy, or all-unauthenticated).
    public init(initial: InboundPolicy, logger: Logger) {
        state = Mutex(State(evaluator: InboundPolicyEvaluator(initial)))
        self.logger = logger
    }

    /// Everything allowed: for listeners that are not given a policy (tests, tools).
    public static func allowAll() -> InboundAuthorizer {
        InboundAuthorizer(initial: InboundPolicy(workload: "", cluster: ""), logger: Logger(label: "starling.authz"))
    }

    public var policy: InboundPolicy { evaluator.policy }
    /// True once a policy from the controller has been applied.
    public var hasReceivedPolicy: Bool { state.withLock { $0.received } }

    var evaluator: InboundPolicyEvaluator { state.withLock { $0.evaluator } }

    /// Applies a policy from the controller (a no-op when it is the one in force).
    public func update(_ policy: InboundPolicy) {
        let watchers: [@Sendable () -> Void]? = state.withLock { state in
            let first = !state.received
            state.received = true
            guard first || state.evaluator.policy != policy else { return nil }
            state.evaluator = InboundPolicyEvaluator(policy)
            return Array(state.watchers.values)
        }
        guard let watchers else { return }
        logger.info(
            "inbound policy applied",
            metadata: [
                "default": "\(policy.defaultPolicy.rawValue)", "servers": "\(policy.servers.map(\.name).joined(separator: ","))",
            ])
        for watcher in watchers { watcher() }
    }

    /// Calls `changed` after every policy change until `cancel` is called with the token.
    package func watch(_ changed: @escaping @Sendable () -> Void) -> UUID {
        let id = UUID()
        state.withLock { $0.watchers[id] = changed }
        return id
    }

    package func cancelWatch(_ id: UUID) {
        _ = state.withLock { $0.watchers.removeValue(forKey: id) }
    }

    /// Decides one HTTP request, counts and logs it. Where the Server covering `port`
    /// authorizes by route, a path not in normal form (``RequestPath``) is matched in normal
    /// form, returned as `path` for the request to go on with; nil when it stays as sent. One
    /// read of the policy decides both.
    package func authorizeHTTP(
        port: Int, caller: PolicyCaller, method: String, path: String, header: @escaping (String) -> String?
    ) -> (decision: AuthorizationDecision, path: String?) {
        let evaluator = self.evaluator
        var normalized: String?
        if RequestPath.needsNormalizing(path), let server = evaluator.server(forPort: port), !server.routes.isEmpty {
            let candidate = RequestPath.normalized(path)
            if candidate != path { normalized = candidate }
        }
        let request = InboundPolicyEvaluator.Request(method: method, path: Substring(normalized ?? path), header: header)
        let decision = evaluator.decide(port: port, caller: caller, request: request)
        record(decision, protocol: .http, caller: caller, port: port)
        return (decision, normalized)
    }

    /// Decides one opaque TCP connection, counts and logs it. `count: false` re-checks an open
    /// connection after a policy change without counting it again (unless it is now denied).
    package func authorizeTCP(port: Int, caller: PolicyCaller, count: Bool = true) -> AuthorizationDecision {
        let decision = evaluator.decide(port: port, caller: caller, request: nil)
        if count || !decision.allowed { record(decision, protocol: .tcp, caller: caller, port: port) }
        return decision
    }

    enum Kind: String { case http, tcp }

    private struct MetricKey: Hashable, Sendable {
        var kind: String
        var outcome: String
        var server: String
        var route: String
        var policy: String
    }

    private static let counters = MetricHandleCache<MetricKey, Counter>()

    private func record(_ decision: AuthorizationDecision, protocol kind: Kind, caller: PolicyCaller, port: Int) {
        let outcome = decision.allowed ? "allow" : "deny"
        Self.count(kind, outcome, decision)
        if decision.wouldDeny { Self.count(kind, "would_deny", decision) }
        guard !decision.allowed || decision.wouldDeny else { return }
        // At info: any admitted peer can send denied requests by the thousand on one connection
        // (a refused handshake costs a connection each, and is logged at notice).
        logger.info(
            decision.allowed ? "audit: would deny" : "\(kind == .http ? "request" : "connection") denied",
            metadata: [
                "client_identity": "\(caller.identity ?? "none")", "client_cluster": "\(caller.cluster ?? "unknown")",
                "port": "\(port)", "server": "\(decision.server)", "route": "\(decision.route)",
                "reason": "\(decision.reason)",
            ])
    }

    private static func count(_ kind: Kind, _ outcome: String, _ decision: AuthorizationDecision) {
        let key = MetricKey(kind: kind.rawValue, outcome: outcome, server: decision.server, route: decision.route, policy: decision.policy)
        counters.handle(key) {
            Counter(
                label: "inbound_\(kind.rawValue)_authz_\(outcome)_total",
                dimensions: [("server", decision.server), ("route", decision.route), ("policy", decision.policy)])
        }.increment()
    }
}
