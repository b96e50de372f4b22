import Foundation
import Logging
import StarlingCore
import Synchronization

/// Leases of registered workloads: each heartbeat extends one; the holder of the lease-expiry
/// duty deletes workloads whose lease ran out, so a dead proxy leaves no endpoint behind.
///
/// With one controller (SQLite) the leases live in its memory. Replicas sharing a database keep
/// them there (`ReplicatedStore` heartbeats), so a heartbeat taken by any replica counts.
final class WorkloadLeases: Sendable {
    /// Set on workloads registered through the API (as opposed to applied by an operator):
    /// only those expire.
    static let leasedAnnotation = "starling.io/leased"

    private let deadlines = Mutex<[ResourceKey: ContinuousClock.Instant]>([:])
    private let store: any ResourceStore
    private let shared: (any ReplicatedStore)?
    private let lease: Duration
    private let logger: Logger

    init(store: any ResourceStore, lease: Duration, logger: Logger) {
        self.store = store
        self.shared = store as? any ReplicatedStore
        self.lease = lease
        self.logger = logger
    }

    /// A workload was registered: its lease starts now.
    func register(_ key: ResourceKey) async throws {
        if let shared { return try await shared.recordRegistration(key) }
        renew(key)
    }

    /// A heartbeat: extends the lease; false when the workload holds none (it must register again).
    /// Replicas store the proxy's certificate `report` with it (``CertificateReports``).
    func heartbeat(_ key: ResourceKey, report: CertificateReport?) async throws -> Bool {
        if let shared { return try await shared.recordHeartbeat(key, report: report) }
        guard deadlines.withLock({ $0[key] != nil }) else { return false }
        renew(key)
        return true
    }

    func release(_ key: ResourceKey) async throws {
        if let shared { return try await shared.forgetWorkload(key) }
        _ = deadlines.withLock { $0.removeValue(forKey: key) }
    }

    private func renew(_ key: ResourceKey) {
        let deadline = ContinuousClock.now.advanced(by: lease)
        deadlines.withLock { $0[key] = deadline }
    }

    /// The lease-expiry duty, until cancelled. First every leased workload gets a fresh lease
    /// (after a restart or a change of holder, proxies get one lease period to reach a replica);
    /// then expired ones are deleted every second — through `fence` when replicas share the store.
    func expire(fence: DutyFence?) async throws {
        if let shared, let fence {
            try await shared.restartWorkloadLeases()
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                for key in try await shared.takeExpiredWorkloads(lease: lease) {
                    if try await shared.delete(key, fence: fence) != nil {
                        logger.info("workload expired: no heartbeat", metadata: ["workload": "\(key)"])
                    }
                }
            }
            return
        }
        for workload in try await store.list(kind: "Workload", namespace: nil, selector: nil)
        where workload.metadata.annotations[Self.leasedAnnotation] == "true" {
            renew(workload.key)
        }
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(1))
            let now = ContinuousClock.now
            let expired = deadlines.withLock { d in
                let keys = d.filter { $0.value < now }.map(\.key)
                for key in keys { d[key] = nil }
                return keys
            }
            for key in expired {
                do {
                    if try await store.delete(key) != nil {
                        logger.info("workload expired: no heartbeat", metadata: ["workload": "\(key)"])
                    }
                } catch {
                    logger.error("could not remove expired workload", metadata: ["workload": "\(key)", "error": "\(error)"])
                    renew(key)
                }
            }
        }
    }
}
