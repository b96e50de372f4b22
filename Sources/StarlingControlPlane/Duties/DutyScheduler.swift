import Logging
import Synchronization
import StarlingCore

/// A job that must run on one replica of a cluster at a time: workload lease expiry, the service
/// mirror. `run` gets the fence its writes must carry (nil when the store is not shared: one
/// controller owns it) and runs until cancelled.
struct Duty: Sendable {
    /// The duties a controller runs, by the names their leases and `check` use.
    static let workloadLeaseExpiry = "workload-lease-expiry"
    static let serviceMirror = "service-mirror"
    static let historyCompaction = "history-compaction"
    /// Every duty, in the order `check` lists them.
    static let all = [serviceMirror, workloadLeaseExpiry, historyCompaction]

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
    /// This replica's admin server, recorded with each heartbeat (known once it is bound).
    var adminAddress: @Sendable () -> String = { "" }
    /// Told the replicas the store lists, every few heartbeats (Prometheus discovery lists them).
    var replicasSeen: (@Sendable ([ReplicaSeen]) -> Void)? = nil
    /// Runs after each heartbeat: work that may wait for the database, off any client's path.
    var afterHeartbeat: (@Sendable () async -> Void)? = nil

    func run(_ duties: [Duty]) async {
        await withDiscardingTaskGroup { group in
            if let shared = store as? any ReplicatedStore {
                // Replicas say they are alive, for `check` (2/3 replicas live).
                group.addTask {
                    var beats = 0
                    while !Task.isCancelled {
                        if let skew = try? await shared.recordReplica(holder, adminAddress: adminAddress()) { clock?.record(skew) }
                        if let replicasSeen, beats % 5 == 0, let seen = try? await shared.replicas() { replicasSeen(seen) }
                        await afterHeartbeat?()
                        beats += 1
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
        var running: DutyRun?
        var failing = false
        func stop(_ why: String) {
            running?.stop(why)
            running = nil
        }
        while !Task.isCancelled {
            let asked = ContinuousClock.now
            // A run its watchdog stopped ends before the duty may start again: two copies would
            // carry the same fence.
            if let stopped = running, stopped.isStopped {
                await stopped.finished()
                running = nil
            }
            do {
                if let token = try await shared.acquireDuty(duty.name, holder: holder, ttl: ttl) {
                    // Stop before the lease can run out: by then another replica may hold it.
                    let deadline = asked + ttl - renewEvery
                    if let current = running, current.token == token {
                        current.extend(to: deadline)
                    } else {
                        stop("the lease was renewed with a new token")
                        let fence = DutyFence(duty: duty.name, holder: holder, token: token)
                        let logger = logger
                        running = DutyRun(
                            duty: duty.name, token: token, deadline: deadline, logger: logger,
                            body: { await Self.keepRunning(duty.name, logger: logger) { try await duty.run(fence) } })
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
            try? await Task.sleep(for: renewEvery)
        }
        if let current = running {
            current.stop("the controller is stopping")
            try? await shared.releaseDuty(duty.name, holder: holder)
        }
    }
}

/// One holding of a duty: its task, and a watchdog that stops it at the lease's deadline unless
/// a renewal extended it. The watchdog runs apart from the renewal, so a renewal stuck on an
/// unreachable database (its call bounded at 10 s) cannot keep the duty running past its lease.
final class DutyRun: Sendable {
    let duty: String
    let token: Int64
    private let logger: Logger
    private let state: Mutex<(deadline: ContinuousClock.Instant, stopped: Bool)>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let watchdog: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(
        duty: String, token: Int64, deadline: ContinuousClock.Instant, logger: Logger,
        body: @escaping @Sendable () async -> Void
    ) {
        self.duty = duty
        self.token = token
        self.logger = logger
        state = Mutex((deadline, false))
        task.withLock { $0 = Task { await body() } }
        watchdog.withLock {
            $0 = Task { [weak self] in
                while let self, !Task.isCancelled {
                    let deadline = self.state.withLock { $0.deadline }
                    if ContinuousClock.now >= deadline {
                        self.stop("the lease could not be renewed in time")
                        return
                    }
                    try? await Task.sleep(until: deadline, clock: .continuous)
                }
            }
        }
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Returns once the duty's task has ended.
    func finished() async {
        let running = task.withLock { $0 }
        await running?.value
    }

    /// A renewal: the duty may run until `deadline`.
    func extend(to deadline: ContinuousClock.Instant) {
        state.withLock { if !$0.stopped { $0.deadline = max($0.deadline, deadline) } }
    }

    /// Cancels the duty (once), logging why.
    func stop(_ why: String) {
        let first = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard first else { return }
        task.withLock { $0?.cancel() }
        watchdog.withLock { $0?.cancel() }
        logger.notice("duty stopped", metadata: ["duty": "\(duty)", "token": "\(token)", "reason": "\(why)"])
    }
}
