import Logging
import StarlingCore

/// A job that must run on one replica of a cluster at a time: workload lease expiry, the service
/// mirror. `run` gets the fence its writes must carry (nil when the store is not shared: one
/// controller owns it) and runs until cancelled.
struct Duty: Sendable {
    /// The duties a controller runs, by the names their leases and `check` use.
    static let workloadLeaseExpiry = "workload-lease-expiry"
    static let serviceMirror = "service-mirror"

    var name: String
    var run: @Sendable (DutyFence?) async throws -> Void
}

/// Runs each duty on whichever replica holds its lease in the shared store.
///
/// Every `renewEvery` a replica takes or renews each lease for `ttl`. The holder runs the duty
/// with the lease's fencing token; when a renewal fails, or the lease has not been renewed for
/// `ttl - renewEvery` by this replica's own monotonic clock, it stops the duty before the lease
/// can run out, and the fence refuses any write still in flight. A replica that dies stops
/// renewing, and another takes the duty within `ttl + renewEvery`.
struct DutyScheduler: Sendable {
    var store: any ResourceStore
    /// This replica, as `check` shows it: its API address and process id.
    var holder: String
    var ttl: Duration = .seconds(4)
    var renewEvery: Duration = .seconds(1)
    var logger: Logger
    /// Where each heartbeat's clock measurement goes.
    var clock: ReplicaClock? = nil

    func run(_ duties: [Duty]) async {
        await withDiscardingTaskGroup { group in
            if let shared = store as? any ReplicatedStore {
                // Replicas say they are alive, for `check` (2/3 replicas live).
                group.addTask {
                    while !Task.isCancelled {
                        if let skew = try? await shared.recordReplica(holder) { clock?.record(skew) }
                        try? await Task.sleep(for: renewEvery)
                    }
                }
            }
            for duty in duties {
                group.addTask {
                    if let shared = store as? any ReplicatedStore {
                        await lead(duty, shared)
                    } else {
                        await Self.keepRunning(duty.name, logger: logger) { try await duty.run(nil) }
                    }
                }
            }
        }
    }

    /// Runs `body` until cancelled, restarting it a second after it fails (a store outage must
    /// not stop a duty, or any of the controller's loops, for good); a fenced write ends it.
    static func keepRunning(_ name: String, logger: Logger, _ body: @Sendable () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await body()
            } catch let error as StoreError where error.code == .fenced {
                logger.warning("duty refused by its fence; stopping it", metadata: ["duty": "\(name)", "error": "\(error.message)"])
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("job failed; restarting it in 1 s", metadata: ["job": "\(name)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func lead(_ duty: Duty, _ shared: any ReplicatedStore) async {
        var running: (token: Int64, task: Task<Void, Never>)?
        var validUntil = ContinuousClock.now
        var failing = false
        func stop(_ why: String) {
            guard let current = running else { return }
            current.task.cancel()
            running = nil
            logger.notice("duty stopped", metadata: ["duty": "\(duty.name)", "token": "\(current.token)", "reason": "\(why)"])
        }
        while !Task.isCancelled {
            let asked = ContinuousClock.now
            do {
                if let token = try await shared.acquireDuty(duty.name, holder: holder, ttl: ttl) {
                    validUntil = asked + ttl
                    if running?.token != token {
                        stop("the lease was renewed with a new token")
                        let fence = DutyFence(duty: duty.name, holder: holder, token: token)
                        let logger = logger
                        running = (token, Task { await Self.keepRunning(duty.name, logger: logger) { try await duty.run(fence) } })
                        logger.notice("duty taken", metadata: ["duty": "\(duty.name)", "token": "\(token)"])
                    }
                } else {
                    stop("another replica holds the lease")
                }
                if failing {
                    failing = false
                    logger.info("duty lease reachable again", metadata: ["duty": "\(duty.name)"])
                }
            } catch {
                if Task.isCancelled { break }
                if !failing {
                    failing = true
                    logger.warning("cannot renew the duty lease", metadata: ["duty": "\(duty.name)", "error": "\(error)"])
                }
            }
            if running != nil, ContinuousClock.now >= validUntil - renewEvery {
                stop("the lease could not be renewed in time")
            }
            try? await Task.sleep(for: renewEvery)
        }
        if let current = running {
            current.task.cancel()
            try? await shared.releaseDuty(duty.name, holder: holder)
        }
    }
}
