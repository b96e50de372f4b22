import Foundation
import GRPCCore
import Logging
import StarlingAPI

extension DestinationClient {
    /// Which destination stream.
    enum StreamKind: String, Sendable {
        case endpoints = "Get"
        case profile = "GetProfile"
    }

    /// Which child of `watch` finished.
    enum WatchChild: Sendable { case evicted, follower }

    /// How one stream attempt ended.
    struct StreamOutcome: Sendable {
        /// Messages received before the end.
        var received = 0
        /// Why it ended; nil when the server closed it cleanly.
        var error: (any Error)?
        /// The version and digest of the last message received, to resume from.
        var position: Position?
    }

    /// Where a stream left off: sent back when it is re-opened (on any replica), so the replica
    /// confirms the state this proxy holds instead of resending it.
    struct Position: Sendable, Hashable {
        var version: Int64
        var digest: Data
    }

    /// Follows both streams of one cache entry until the entry is evicted or `run()` ends.
    func watch(_ request: WatchRequest, _ client: Starling_V1_Destination.Client<some ClientTransport>) async {
        await withTaskGroup(of: WatchChild.self) { group in
            group.addTask {
                await self.follow(.endpoints, request, client)
                return .follower
            }
            group.addTask {
                await self.follow(.profile, request, client)
                return .follower
            }
            group.addTask {
                for await _ in request.stop {}
                return .evicted
            }
            // Followers only return early for an authority that is not a service; the entry then
            // stays (answering "does not exist") until it is evicted.
            while let finished = await group.next() {
                if case .evicted = finished { break }
            }
            group.cancelAll()
        }
    }

    /// Keeps one stream open, re-opening it with backoff whenever it fails or ends, until cancelled.
    func follow(
        _ kind: StreamKind, _ watch: WatchRequest, _ client: Starling_V1_Destination.Client<some ClientTransport>
    ) async {
        var backoff = configuration.backoff
        var lost = false
        var message = Starling_V1_GetDestination()
        message.path = watch.key
        let logger = self.logger
        while !Task.isCancelled {
            let outcome = await attempt(kind, message, watch, client)
            if Task.isCancelled { return }
            if let position = outcome.position {
                message.resumeVersion = position.version
                message.resumeDigest = position.digest
            }
            if outcome.received > 0 {
                backoff.succeeded()
                if lost {
                    logger.info(
                        "destination stream restored",
                        metadata: ["authority": "\(watch.key)", "stream": "\(kind.rawValue)"])
                    lost = false
                }
            }
            if let rpc = outcome.error as? RPCError, rpc.code == .invalidArgument {
                logger.debug(
                    "the destination API refuses the authority as a service name",
                    metadata: ["authority": "\(watch.key)", "error": "\(rpc.message)"])
                updateRecord(watch.key, id: watch.id) { $0.markNotAService(watch.key) }
                return
            }
            let reason = outcome.error.map(Self.describe) ?? "the controller closed the stream"
            recordFailure(watch.key, id: watch.id, reason)
            let delay = backoff.failed()
            let metadata: Logger.Metadata = [
                "authority": "\(watch.key)", "stream": "\(kind.rawValue)", "error": "\(reason)",
                "retry_in": "\(delay)",
            ]
            if outcome.received > 0 || backoff.failures == 1 {
                logger.warning("destination stream lost; serving the last known state", metadata: metadata)
                lost = true
            } else {
                logger.debug("destination stream still unavailable", metadata: metadata)
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// One stream attempt: applies every message until the stream ends.
    private func attempt(
        _ kind: StreamKind, _ message: Starling_V1_GetDestination, _ watch: WatchRequest,
        _ client: Starling_V1_Destination.Client<some ClientTransport>
    ) async -> StreamOutcome {
        do {
            switch kind {
            case .endpoints:
                return try await client.get(message) { response in
                    var outcome = StreamOutcome()
                    do {
                        for try await update in response.messages {
                            let resync = outcome.received == 0
                            if update.version > 0 {
                                outcome.position = Position(version: update.version, digest: update.digest)
                            }
                            var skipped: [String] = []
                            self.updateRecord(watch.key, id: watch.id) { skipped = $0.apply(update, resync: resync) }
                            outcome.received += 1
                            if !skipped.isEmpty {
                                self.logger.warning(
                                    "endpoints with an unparsable identity ignored",
                                    metadata: ["authority": "\(watch.key)", "endpoints": "\(skipped)"])
                            }
                        }
                    } catch {
                        outcome.error = error
                    }
                    return outcome
                }
            case .profile:
                return try await client.getProfile(message) { response in
                    var outcome = StreamOutcome()
                    do {
                        for try await profile in response.messages {
                            if profile.version > 0 {
                                outcome.position = Position(version: profile.version, digest: profile.digest)
                            }
                            // A resumed stream's confirmation: the profile held is current.
                            if !profile.resumed {
                                self.updateRecord(watch.key, id: watch.id) { $0.apply(profile) }
                            }
                            outcome.received += 1
                        }
                    } catch {
                        outcome.error = error
                    }
                    return outcome
                }
            }
        } catch {
            return StreamOutcome(received: 0, error: error)
        }
    }

    static func describe(_ error: any Error) -> String {
        if let rpc = error as? RPCError { return "\(rpc.code): \(rpc.message)" }
        return "\(error)"
    }
}
