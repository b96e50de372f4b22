import Foundation
import StarlingCore
import Synchronization

/// How fast one identity may have certificates signed: a token bucket per identity, so one
/// token holder sending CSRs as fast as it can spends its own budget and not the signer's time
/// that every other workload's renewals need. The burst lets a whole deployment of one service
/// account start at once; the rate is far above what renewals need (one per certificate per
/// two thirds of its lifetime).
public struct CertifyRateLimit: Sendable, Hashable {
    /// Certificates per second one identity gets once its burst is spent.
    public var perSecond: Double
    /// Certificates one identity may get at once.
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// 10 per second per identity, 100 at once.
    public static let standard = CertifyRateLimit(perSecond: 10, burst: 100)
}

/// The buckets of ``CertifyRateLimit``, one per identity, refilled by the monotonic clock.
final class CertifyRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        /// Refusals not yet logged, and when the last log line went out.
        var refusedSinceLog = 0
        var logged: ContinuousClock.Instant?
    }

    /// A refused request: when to retry, and — at most every 10 s per identity, so a flood
    /// makes one log line and not thousands — how many were refused since the last line.
    struct Refusal: Sendable {
        var retryAfter: Duration
        var toLog: Int?
    }

    let limit: CertifyRateLimit
    private let buckets = Mutex<[String: Bucket]>([:])
    /// Buckets kept before full ones are dropped (a full bucket is the same as none).
    private let pruneAbove = 10_000

    init(_ limit: CertifyRateLimit) {
        self.limit = limit
    }

    /// Takes one certificate from `identity`'s bucket; nil when there was one.
    func acquire(_ identity: String, now: ContinuousClock.Instant = .now) -> Refusal? {
        let limit = self.limit
        let pruneAbove = self.pruneAbove
        return buckets.withLock { all -> Refusal? in
            var bucket = all[identity] ?? Bucket(tokens: limit.burst, updated: now)
            let elapsed = bucket.updated.duration(to: now)
            let seconds = elapsed.inSeconds
            bucket.tokens = min(limit.burst, bucket.tokens + max(0, seconds) * limit.perSecond)
            bucket.updated = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                all[identity] = bucket
                if all.count > pruneAbove {
                    all = all.filter { $0.value.tokens < limit.burst - 1 }
                }
                return nil
            }
            bucket.refusedSinceLog += 1
            var toLog: Int?
            if bucket.logged.map({ $0.duration(to: now) >= .seconds(10) }) ?? true {
                toLog = bucket.refusedSinceLog
                bucket.refusedSinceLog = 0
                bucket.logged = now
            }
            all[identity] = bucket
            return Refusal(
                retryAfter: .milliseconds(Int64(((1 - bucket.tokens) / limit.perSecond * 1000).rounded(.up))), toLog: toLog)
        }
    }
}
