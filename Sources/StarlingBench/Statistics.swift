/// Order statistics over a small sample, and the `result` lines the bench script reads.
enum Statistics {
    /// The median (the mean of the middle two for an even count); nil for an empty sample.
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The nearest-rank percentile `p` (0...100): the smallest value with at least p% of the sample
    /// at or below it. With 30 samples p99 is the maximum; it is reported as such, not interpolated.
    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// `value` with `digits` decimals, for the human summary.
    static func format(_ value: Double, digits: Int = 1) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        guard digits > 0 else { return rounded.magnitude < 1e15 ? "\(Int(rounded))" : "\(rounded)" }
        let text = "\(rounded)"
        guard let dot = text.firstIndex(of: ".") else { return text }
        let decimals = text.distance(from: text.index(after: dot), to: text.endIndex)
        return decimals < digits ? text + String(repeating: "0", count: digits - decimals) : text
    }

    /// p50, p99 (nearest rank) and max of latencies in milliseconds (0 for none).
    struct Latencies {
        var p50: Double
        var p99: Double
        var max: Double

        init(_ milliseconds: [Double]) {
            p50 = Statistics.percentile(milliseconds, 50) ?? 0
            p99 = Statistics.percentile(milliseconds, 99) ?? 0
            max = milliseconds.max() ?? 0
        }

        /// `p50 A ms, p99 B ms, max C ms`
        var summary: String { "p50 \(format(p50)) ms, p99 \(format(p99)) ms, max \(format(max)) ms" }

        /// `result PREFIX.p50 …`, `.p99`, `.max`, in ms.
        func printResults(_ prefix: String) {
            result("\(prefix).p50", p50, "ms")
            result("\(prefix).p99", p99, "ms")
            result("\(prefix).max", max, "ms")
        }
    }

    /// Prints one machine-readable line, `result NAME VALUE UNIT`.
    static func result(_ name: String, _ value: Double, _ unit: String) {
        print("result \(name) \(format(value, digits: 3)) \(unit)")
    }
}
