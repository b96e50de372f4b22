import Foundation
import Logging
import StarlingCore
import Synchronization

/// What each registered proxy last reported in its heartbeats (the fingerprint of the issuer of
/// its certificate and of the trust anchors it verifies peers with), and what was issued to each
/// gateway. `check` follows a trust anchor rollover with them. A report not refreshed for two
/// minutes is dropped (its workload is gone).
///
/// A gateway registers no workload and sends no heartbeat: what was last issued to each gateway
/// host is kept instead (the gateway installs a certificate as soon as it gets it). Past its
/// expiry it is kept as long again, reported as expired: a gateway that stopped renewing is
/// flagged, not dropped, at the moment it breaks.
///
/// One controller keeps them in memory. Replicas sharing a database keep them there, so any
/// replica's `check` sees every proxy and every gateway, whichever replica heard from it: a
/// heartbeat carries its report into the store, and what this replica issued to gateways is
/// written with its next replica heartbeat (``publish()``), never in the path of a Certify call,
/// which must not wait for the database.
final class CertificateReports: Sendable {
    typealias Report = CertificateReport

    private let reports = Mutex<[ResourceKey: (report: Report, seen: ContinuousClock.Instant)]>([:])
    private let issued = Mutex<[String: (report: Report, until: ContinuousClock.Instant, validity: Duration)]>([:])
    /// Issued here and not yet in the shared store, by holder.
    private let unpublished = Mutex<[String: IssuedCertificate]>([:])
    private let keep: Duration
    private let shared: (any ReplicatedStore)?

    init(keep: Duration = .seconds(120), shared: (any ReplicatedStore)? = nil) {
        self.keep = keep
        self.shared = shared
    }

    /// Whether heartbeats' reports go to the shared store (with the heartbeat) instead of here.
    var isShared: Bool { shared != nil }

    func record(_ key: ResourceKey, _ report: Report, now: ContinuousClock.Instant = .now) {
        reports.withLock { $0[key] = (report, now) }
    }

    func forget(_ key: ResourceKey) {
        _ = reports.withLock { $0.removeValue(forKey: key) }
    }

    /// A certificate this replica issued to `holder` (a gateway), valid until `notValidAfter`
    /// (`validity` from `now`).
    func recordIssued(
        _ holder: String, _ report: Report, notValidAfter: Date, validity: Duration, now: ContinuousClock.Instant = .now
    ) {
        issued.withLock { $0[holder] = (report, now + validity, validity) }
        guard shared != nil else { return }
        let certificate = IssuedCertificate(holder: holder, report: report, notValidAfter: notValidAfter, lifetime: validity)
        unpublished.withLock { $0[holder] = certificate }
    }

    /// Writes what this replica issued since the last call to the shared store; kept for the
    /// next call when the store does not answer (a newer issue to the same holder replaces it).
    func publish(logger: Logger) async {
        guard let shared else { return }
        let pending = unpublished.withLock { pending in
            defer { pending = [:] }
            return pending
        }
        guard !pending.isEmpty else { return }
        do {
            try await shared.recordIssuedCertificates(Array(pending.values))
        } catch {
            unpublished.withLock { now in now.merge(pending) { newer, _ in newer } }
            logger.debug("gateway certificate reports not written yet", metadata: ["error": "\(error)"])
        }
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

    /// Every report `check` should weigh: the shared store's, with what this replica issued and
    /// has not published yet; or, for one controller, what it holds in memory.
    func all() async throws -> CertificateReportSet {
        guard let shared else { return CertificateReportSet(workloads: current(), gateways: currentIssued()) }
        var set = try await shared.certificateReports(window: keep)
        let mine = currentIssued()
        for holder in unpublished.withLock({ Array($0.keys) }) {
            if let report = mine[holder] { set.gateways[holder] = report }
        }
        return set
    }
}
