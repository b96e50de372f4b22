import Foundation
import Logging
import StarlingCore
import Synchronization

/// Leases of registered workloads: each heartbeat extends one; the reaper deletes workloads whose
/// lease ran out, so a dead proxy leaves no endpoint behind.
final class WorkloadLeases: Sendable {
    /// Set on workloads registered through the API (as opposed to applied by an operator):
    /// only those expire.
    static let leasedAnnotation = "starling.io/leased"

    private let deadlines = Mutex<[ResourceKey: ContinuousClock.Instant]>([:])
    private let store: any ResourceStore
    private let lease: Duration
    private let logger: Logger

    init(store: any ResourceStore, lease: Duration, logger: Logger) {
        self.store = store
        self.lease = lease
        self.logger = logger
    }

    func renew(_ key: ResourceKey) {
        let deadline = ContinuousClock.now.advanced(by: lease)
        deadlines.withLock { $0[key] = deadline }
    }

    /// True when the workload holds a lease (it was registered and has not expired).
    func holds(_ key: ResourceKey) -> Bool { deadlines.withLock { $0[key] != nil } }

    func release(_ key: ResourceKey) { deadlines.withLock { _ = $0.removeValue(forKey: key) } }

    /// Gives every leased workload already in the store a fresh lease (after a controller
    /// restart, proxies get one lease period to send their next heartbeat), then reaps expired
    /// leases every second until cancelled.
    func run() async throws {
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
