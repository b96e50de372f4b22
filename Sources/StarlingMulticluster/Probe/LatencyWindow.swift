import StarlingCore
/// Probe round-trip times over a sliding window (the last minute), for the gateways table.
public struct LatencyWindow: Sendable {
    public var span: Duration
    private var samples: [(at: ContinuousClock.Instant, latency: Duration)] = []

    public init(span: Duration = .seconds(60)) { self.span = span }

    public mutating func record(_ latency: Duration, at now: ContinuousClock.Instant) {
        samples.append((now, latency))
        let horizon = now.advanced(by: .zero - span)
        if let first = samples.firstIndex(where: { $0.at >= horizon }), first > 0 {
            samples.removeFirst(first)
        }
    }

    /// The `p`-th percentile (0...100) in milliseconds, nil when there are no samples.
    public func percentileMilliseconds(_ p: Double, now: ContinuousClock.Instant) -> Double? {
        let horizon = now.advanced(by: .zero - span)
        let values = samples.filter { $0.at >= horizon }.map { $0.latency.inMilliseconds }.sorted()
        guard !values.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(values.count)).rounded(.up)) - 1
        return values[min(max(rank, 0), values.count - 1)]
    }
}
