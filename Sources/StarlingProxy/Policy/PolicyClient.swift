import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import StarlingMulticluster
import SwiftProtobuf

/// Follows the workload's inbound policy on the controller's Policy stream and applies each
/// one to the ``InboundAuthorizer``. A lost stream is re-opened with backoff (on any replica);
/// meanwhile the last policy received stays in force.
struct PolicyClient: Sendable {
    let controller: ControllerAPI
    let namespace: String
    /// The registered workload's name; "" for a proxy that registers none (its namespace's
    /// default applies).
    let workload: String
    /// The labels and ports the workload registers with: the controller selects Servers by them
    /// while no such Workload exists (before the registration lands, after a lapsed lease).
    var labels: [String: String] = [:]
    var ports: [WorkloadPort] = []
    let authorizer: InboundAuthorizer
    let logger: Logger

    func run() async throws {
        let transport = try controller.makeTransport()
        try await withGRPCClient(transport: transport, interceptors: [BearerTokenInterceptor(token: controller.token)]) { grpc in
            let client = Starling_V1_Policy.Client(wrapping: grpc)
            await follow(client)
        }
    }

    private func follow(_ client: Starling_V1_Policy.Client<some ClientTransport>) async {
        var backoff = ReconnectBackoff()
        var lost = false
        var request = Starling_V1_GetInboundPolicy.with {
            $0.namespace = namespace
            $0.name = workload
            $0.labels = labels
            $0.ports = ports.map { p in
                .with {
                    $0.name = p.name ?? ""
                    $0.port = UInt32(p.port)
                    $0.appPort = UInt32(p.appPort ?? 0)
                }
            }
        }
        let applied = AppliedVersion()
        while !Task.isCancelled {
            request.resumeVersion = applied.version
            var failure: (any Error)?
            var received = 0
            do {
                (received, failure) = try await client.watchInbound(request) { response in
                    var count = 0
                    do {
                        for try await update in response.messages {
                            count += 1
                            apply(update, applied: applied)
                        }
                    } catch {
                        return (count, error)
                    }
                    return (count, nil)
                }
            } catch {
                failure = error
            }
            if Task.isCancelled { return }
            if let rpc = failure as? RPCError, rpc.code == .unimplemented, !authorizer.hasReceivedPolicy {
                // A controller from before authorization policy: there is none to follow.
                logger.warning("the controller has no Policy API; enforcing the initial inbound policy")
                authorizer.update(authorizer.policy)
            }
            if received > 0 {
                backoff.succeeded()
                if lost {
                    logger.info("policy stream restored")
                    lost = false
                }
            }
            let delay = backoff.failed()
            let reason = failure.map(DestinationClient.describe) ?? "the controller closed the stream"
            if received > 0 || backoff.failures == 1 {
                logger.warning(
                    "policy stream lost; enforcing the last policy received",
                    metadata: ["error": "\(reason)", "retry_in": "\(delay)"])
                lost = true
            } else {
                logger.debug("policy stream still unavailable", metadata: ["error": "\(reason)", "retry_in": "\(delay)"])
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// The store version of the policy applied last (what a re-opened stream resumes from).
    private final class AppliedVersion: @unchecked Sendable {
        // Only the follow loop's task reads and writes it, one stream at a time.
        var version: Int64 = 0
    }

    private func apply(_ update: Starling_V1_InboundPolicyUpdate, applied: AppliedVersion) {
        // A re-opened stream's replica first catches up to the version applied (the request
        // names it), so an older version means a replica that could not within its limit, or a
        // store that was reset; either way it is what the cluster has now, and refusing it could
        // freeze the proxy on a policy nobody holds any more.
        if update.version < applied.version {
            logger.notice(
                "the controller answered with an older inbound policy version; applying it",
                metadata: ["version": "\(update.version)", "applied": "\(applied.version)"])
        }
        let policy: InboundPolicy
        do {
            policy = try InboundPolicyJSON.decode(update.policyJson)
        } catch {
            // Keep what is in force rather than fall open.
            logger.error("unreadable inbound policy from the controller; keeping the previous one", metadata: ["error": "\(error)"])
            return
        }
        for problem in update.problems {
            logger.debug("inbound policy problem", metadata: ["problem": "\(problem)"])
        }
        authorizer.update(policy)
        applied.version = update.version
    }
}
