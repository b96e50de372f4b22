import StarlingCore
import Synchronization

/// What each registered proxy last reported in its heartbeats: the fingerprint of the issuer of
/// its certificate and of the trust anchors it verifies peers with. Kept in memory on each
/// replica; heartbeats are balanced over the replicas, so each one hears from every proxy every
/// few heartbeats. `check` follows a trust anchor rollover with them. A report not refreshed for
/// two minutes is dropped (its workload is gone).
final class CertificateReports: Sendable {
    struct Report: Sendable, Hashable {
        var issuer: String
        var trustAnchors: String
    }

    private let reports = Mutex<[ResourceKey: (report: Report, seen: ContinuousClock.Instant)]>([:])
    private let keep: Duration

    init(keep: Duration = .seconds(120)) {
        self.keep = keep
    }

    func record(_ key: ResourceKey, _ report: Report, now: ContinuousClock.Instant = .now) {
        reports.withLock { $0[key] = (report, now) }
    }

    func forget(_ key: ResourceKey) {
        _ = reports.withLock { $0.removeValue(forKey: key) }
    }

    /// The reports heard within the last two minutes.
    func current(now: ContinuousClock.Instant = .now) -> [ResourceKey: Report] {
        let keep = self.keep
        return reports.withLock { all in
            all = all.filter { now - $0.value.seen < keep }
            return all.mapValues(\.report)
        }
    }
}
