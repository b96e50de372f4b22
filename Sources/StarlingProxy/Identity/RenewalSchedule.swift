public import Foundation
import StarlingCore

/// When to renew the workload certificate, and how long to wait after a failed attempt.
///
/// A pure value: the identity client feeds it what happened (a certificate arrived, an attempt
/// failed) and sleeps for the delay it returns. Renewal is due at ``Configuration/lifetimeFraction``
/// of the certificate's life (70 %, as DESIGN.md says); failures back off exponentially with jitter
/// and never wait past the moment the current certificate expires.
public struct RenewalSchedule: Sendable, Hashable {
    public struct Configuration: Sendable, Hashable {
        /// Fraction of a certificate's life after which it is renewed.
        public var lifetimeFraction: Double
        /// Wait after the first failure.
        public var initialBackoff: Duration
        /// Longest wait between attempts.
        public var maximumBackoff: Duration
        /// Growth of the wait per consecutive failure.
        public var multiplier: Double
        /// Relative spread of each wait: 0.2 means ±20 %.
        public var jitter: Double

        public init(
            lifetimeFraction: Double = 0.7, initialBackoff: Duration = .seconds(1),
            maximumBackoff: Duration = .seconds(60), multiplier: Double = 2, jitter: Double = 0.2
        ) {
            self.lifetimeFraction = lifetimeFraction
            self.initialBackoff = initialBackoff
            self.maximumBackoff = maximumBackoff
            self.multiplier = multiplier
            self.jitter = jitter
        }
    }

    public var configuration: Configuration
    /// Failed attempts since the last certificate arrived.
    public private(set) var consecutiveFailures = 0
    /// The validity of the certificate in force, if any.
    public private(set) var validity: ClosedRange<Date>?

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The moment a certificate valid over `notBefore...notAfter` is due for renewal.
    public func renewalDate(notBefore: Date, notAfter: Date) -> Date {
        let life = max(0, notAfter.timeIntervalSince(notBefore))
        return notBefore.addingTimeInterval(life * configuration.lifetimeFraction)
    }

    /// A certificate arrived: resets the backoff and returns the wait until its renewal.
    public mutating func certified(notBefore: Date, notAfter: Date, now: Date) -> Duration {
        consecutiveFailures = 0
        validity = notBefore...max(notBefore, notAfter)
        return .seconds(max(0, renewalDate(notBefore: notBefore, notAfter: notAfter).timeIntervalSince(now)))
    }

    /// An attempt failed: returns the wait before the next one.
    ///
    /// - Parameter random: a value in `0..<1` choosing the jitter (injected for tests).
    public mutating func failed(now: Date, random: Double = Double.random(in: 0..<1)) -> Duration {
        consecutiveFailures += 1
        var delay = backoff(afterFailures: consecutiveFailures, random: random)
        // While the current certificate is still valid, try once more just before it expires
        // rather than sleeping past its end.
        if let validity, now < validity.upperBound {
            let remaining = Duration.seconds(validity.upperBound.timeIntervalSince(now))
            if delay > remaining { delay = max(remaining / 2, .milliseconds(100)) }
        }
        return delay
    }

    /// The jittered exponential backoff after `failures` consecutive failures (1 = the first).
    public func backoff(afterFailures failures: Int, random: Double) -> Duration {
        let c = configuration
        let initial = c.initialBackoff.inSeconds
        let maximum = c.maximumBackoff.inSeconds
        let base = min(maximum, initial * pow(max(1, c.multiplier), Double(max(0, failures - 1))))
        let spread = 1 + c.jitter * (2 * min(max(random, 0), 1) - 1)
        return .seconds(max(0, base * spread))
    }
}
