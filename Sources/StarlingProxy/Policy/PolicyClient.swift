import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
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
    /// Labels for the controller to select Servers by while no such Workload exists.
    var labels: [String: String] = [:]
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
        let request = Starling_V1_GetInboundPolicy.with {
            $0.namespace = namespace
            $0.name = workload
            $0.labels = labels
        }
        while !Task.isCancelled {
            var failure: (any Error)?
            var received = 0
            do {
                (received, failure) = try await client.watchInbound(request) { response in
                    var count = 0
                    do {
                        for try await update in response.messages {
                            count += 1
                            apply(update)
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

    private func apply(_ update: Starling_V1_InboundPolicyUpdate) {
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
    }
}
