/// Go-style durations as Kubernetes-shaped documents write them: `3s`, `500ms`, `1h30m`,
/// `8760h`, `1.5s`, `0`. Units: `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`.
public enum GoDuration {
    /// Parses `text` the way Go's `time.ParseDuration` does.
    public static func parse(_ text: String) throws(ResourceError) -> Duration {
        .nanoseconds(try nanoseconds(text))
    }

    /// The duration in seconds.
    public static func seconds(_ text: String) throws(ResourceError) -> Double {
        Double(try nanoseconds(text)) / 1e9
    }

    /// Parses `text` to a whole number of nanoseconds.
    public static func nanoseconds(_ text: String) throws(ResourceError) -> Int64 {
        let bad = ResourceError(
            .invalidDuration,
            "expected a duration such as 3s, 500ms, 1m or 1h30m, got \(JSONTextWriter.quoted(text))")
        var scalars = Array(text.unicodeScalars)[...]
        var negative = false
        if let first = scalars.first, first == "-" || first == "+" {
            negative = first == "-"
            scalars = scalars.dropFirst()
        }
        if scalars.count == 1, scalars.first == "0" { return 0 }
        guard !scalars.isEmpty else { throw bad }
        var total: Int64 = 0
        while !scalars.isEmpty {
            // A number, possibly with a fraction.
            var whole: Int64 = 0
            var fraction: Int64 = 0
            var fractionScale: Int64 = 1
            var sawDigit = false
            while let s = scalars.first, let d = digit(s) {
                let (w1, o1) = whole.multipliedReportingOverflow(by: 10)
                let (w2, o2) = w1.addingReportingOverflow(d)
                if o1 || o2 { throw overflow(text) }
                whole = w2
                sawDigit = true
                scalars = scalars.dropFirst()
            }
            if scalars.first == "." {
                scalars = scalars.dropFirst()
                while let s = scalars.first, let d = digit(s) {
                    // Digits past nanosecond precision cannot change the result.
                    if fractionScale < 1_000_000_000_000_000 {
                        fraction = fraction * 10 + d
                        fractionScale *= 10
                    }
                    sawDigit = true
                    scalars = scalars.dropFirst()
                }
            }
            guard sawDigit else { throw bad }
            // The unit.
            var unit = ""
            while let s = scalars.first, s != ".", digit(s) == nil {
                unit.unicodeScalars.append(s)
                scalars = scalars.dropFirst()
            }
            guard let perUnit = unitNanoseconds[unit] else {
                if unit.isEmpty {
                    throw ResourceError(.invalidDuration, "missing unit in duration \(JSONTextWriter.quoted(text)); use ns, us, ms, s, m or h")
                }
                throw ResourceError(
                    .invalidDuration, "unknown unit \(JSONTextWriter.quoted(unit)) in duration \(JSONTextWriter.quoted(text)); use ns, us, ms, s, m or h")
            }
            let (w, o1) = whole.multipliedReportingOverflow(by: perUnit)
            if o1 { throw overflow(text) }
            // fraction / fractionScale of a unit, in nanoseconds, in Go's order of operations:
            // (unit / scale) is exact for a fraction written to the unit's precision (`19.032218211s`),
            // where (fraction / scale) × unit lost a nanosecond.
            let fractional = Int64((Double(fraction) * (Double(perUnit) / Double(fractionScale))).rounded(.down))
            let (part, o2) = w.addingReportingOverflow(fractional)
            let (sum, o3) = total.addingReportingOverflow(part)
            if o2 || o3 { throw overflow(text) }
            total = sum
        }
        return negative ? -total : total
    }

    /// `duration` written back in Go's style: `3s`, `500ms`, `1h30m0s`, `0s`.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let totalNanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        return format(nanoseconds: totalNanos)
    }

    /// Nanoseconds written back in Go's style.
    public static func format(nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0s" }
        let sign = nanoseconds < 0 ? "-" : ""
        let n = nanoseconds.magnitude
        if n < 1_000 { return "\(sign)\(n)ns" }
        if n < 1_000_000 { return sign + decimal(n, unit: 1_000) + "µs" }
        if n < 1_000_000_000 { return sign + decimal(n, unit: 1_000_000) + "ms" }
        let hours = n / 3_600_000_000_000
        let minutes = (n / 60_000_000_000) % 60
        let rest = n % 60_000_000_000
        var out = sign
        if hours > 0 { out += "\(hours)h" }
        if hours > 0 || minutes > 0 { out += "\(minutes)m" }
        out += decimal(rest, unit: 1_000_000_000) + "s"
        return out
    }

    private static func decimal(_ n: UInt64, unit: UInt64) -> String {
        let whole = n / unit
        var fraction = n % unit
        guard fraction > 0 else { return "\(whole)" }
        var width = String(unit).count - 1
        while fraction % 10 == 0 {
            fraction /= 10
            width -= 1
        }
        let digits = String(fraction)
        return "\(whole)." + String(repeating: "0", count: width - digits.count) + digits
    }

    private static let unitNanoseconds: [String: Int64] = [
        "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
        "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]

    private static func digit(_ s: Unicode.Scalar) -> Int64? {
        s.value >= 48 && s.value <= 57 ? Int64(s.value - 48) : nil
    }

    private static func overflow(_ text: String) -> ResourceError {
        ResourceError(.invalidDuration, "duration \(JSONTextWriter.quoted(text)) is too long")
    }
}
