import StarlingCore
import Synchronization

/// What each registered proxy last reported in its heartbeats: the fingerprint of the issuer of
/// its certificate and of the trust anchors it verifies peers with. Kept in memory on each
/// replica; heartbeats are balanced over the replicas, so each one hears from every proxy every
/// few heartbeats. `check` follows a trust anchor rollover with them. A report not refreshed for
/// two minutes is dropped (its workload is gone).
///
/// A gateway registers no workload and sends no heartbeat: what this replica last issued to
/// each gateway host is kept instead (the gateway installs a certificate as soon as it gets it).
/// Past its expiry it is kept as long again, reported as expired: a gateway that stopped renewing
/// is flagged, not dropped, at the moment it breaks.
final class CertificateReports: Sendable {
    struct Report: Sendable, Hashable {
        var issuer: String
        var trustAnchors: String
    }

    private let reports = Mutex<[ResourceKey: (report: Report, seen: ContinuousClock.Instant)]>([:])
    private let issued = Mutex<[String: (report: Report, until: ContinuousClock.Instant, validity: Duration)]>([:])
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

    /// A certificate this replica issued to `holder` (a gateway), valid for `validity`.
    func recordIssued(_ holder: String, _ report: Report, validity: Duration, now: ContinuousClock.Instant = .now) {
        issued.withLock { $0[holder] = (report, now + validity, validity) }
    }

    /// The certificates issued to gateways, by holder: nil for one that expired without being
    /// renewed (kept for as long again as it was valid, then dropped).
    func currentIssued(now: ContinuousClock.Instant = .now) -> [String: Report?] {
        issued.withLock { all in
            all = all.filter { now < $0.value.until + $0.value.validity }
            return all.mapValues { now < $0.until ? $0.report : nil }
        }
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
