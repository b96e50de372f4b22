/// Waits between attempts to re-open a destination stream: exponential with jitter, reset once a
/// stream delivers an answer. A pure value, tested without a network.
public struct ReconnectBackoff: Sendable, Hashable {
    /// Wait after the first failure.
    public var initial: Duration
    /// Longest wait.
    public var maximum: Duration
    /// Growth per consecutive failure.
    public var multiplier: Double
    /// Relative spread: 0.2 means ±20 %.
    public var jitter: Double
    /// Consecutive failures so far.
    public private(set) var failures = 0

    public init(
        initial: Duration = .milliseconds(250), maximum: Duration = .seconds(5), multiplier: Double = 2,
        jitter: Double = 0.2
    ) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// A stream failed (or ended): the wait before the next attempt.
    ///
    /// - Parameter random: a value in `0..<1` choosing the jitter (injected for tests).
    public mutating func failed(random: Double = Double.random(in: 0..<1)) -> Duration {
        failures += 1
        var base = initial
        for _ in 1..<failures {
            base = base * max(1, multiplier)
            if base >= maximum {
                base = maximum
                break
            }
        }
        let spread = 1 + jitter * (2 * min(max(random, 0), 1) - 1)
        return min(base, maximum) * spread
    }

    /// A stream delivered an answer: the next failure starts from `initial` again.
    public mutating func succeeded() {
        failures = 0
    }
}
