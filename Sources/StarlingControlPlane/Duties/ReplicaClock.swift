import Foundation
import Logging
import Synchronization

/// This replica's clock against the shared database's, measured at every heartbeat. Leases use
/// the database's clock, so a skewed replica keeps its duties right; but a certificate carries
/// the signer's time, and one signed by a clock minutes ahead is not valid yet anywhere else. A
/// replica whose clock is off by more than ``limit`` therefore signs nothing: its Certify calls
/// fail as unavailable, and proxies retry on another replica.
final class ReplicaClock: Sendable {
    /// The largest skew, in seconds, at which a replica still signs certificates.
    static let defaultLimit: Double = 30

    let limit: Double
    /// A replica of a shared store signs only once it has measured its clock.
    let measurementRequired: Bool
    private let skew = Mutex<Double?>(nil)
    private let logger: Logger

    init(limit: Double = ReplicaClock.defaultLimit, measurementRequired: Bool = false, logger: Logger) {
        self.limit = limit
        self.measurementRequired = measurementRequired
        self.logger = logger
    }

    /// Records a measurement (this replica's clock minus the database's, in seconds), logging
    /// when the skew goes past the limit and when it comes back.
    func record(_ seconds: Double) {
        let before = skew.withLock { value -> Double? in
            defer { value = seconds }
            return value
        }
        let wasOff = before.map { abs($0) > limit } ?? false
        let isOff = abs(seconds) > limit
        if isOff, !wasOff {
            logger.error(
                "this replica's clock is off the database's; it signs no certificates until the clock is synced",
                metadata: ["skew": "\(Self.describe(seconds))", "limit_seconds": "\(Int(limit))"])
        } else if wasOff, !isOff {
            logger.notice("this replica's clock agrees with the database's again; it signs certificates", metadata: ["skew": "\(Self.describe(seconds))"])
        }
    }

    /// Why this replica must not sign now; nil when its clock is within the limit, or not
    /// measured where no measurement is required (a controller on SQLite has no database clock).
    var refusal: String? {
        guard let seconds = skew.withLock({ $0 }) else {
            return measurementRequired
                ? "this controller replica has not compared its clock with the database's yet; other replicas sign meanwhile"
                : nil
        }
        guard abs(seconds) > limit else { return nil }
        return "this controller replica's clock is \(Self.describe(seconds)) the database's, so the certificates it signed "
            + "would not be valid elsewhere; sync its clock (chrony or systemd-timesyncd). Other replicas sign meanwhile."
    }

    /// "10m0s ahead of" / "2.5s behind".
    static func describe(_ seconds: Double) -> String {
        "\(magnitude(seconds)) \(seconds >= 0 ? "ahead of" : "behind")"
    }

    /// "10m0s" / "2.5s" / "0.004s".
    static func magnitude(_ seconds: Double) -> String {
        let value = abs(seconds)
        if value >= 60 { return "\(Int(value) / 60)m\(Int(value) % 60)s" }
        return value >= 1 ? String(format: "%.1fs", value) : String(format: "%.3fs", value)
    }
}
