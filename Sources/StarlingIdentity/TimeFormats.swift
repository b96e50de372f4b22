import Foundation

/// RFC 3339 times, as printed in summaries and accepted by `--not-before` / `--not-after`.
enum RFC3339 {
    /// `2030-01-01T00:00:00Z` (UTC, whole seconds).
    static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(secondsFromGMT: 0) ?? .gmt))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`; nil when `text` is not such a time.
    static func parse(_ text: String) -> Date? {
        guard text.count >= 20, text.contains("T") || text.contains("t") else { return nil }
        let normalised = text.uppercased()
        let plain = Date.ISO8601FormatStyle()
        if let date = try? plain.parse(normalised) {
            return date
        }
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        return try? fractional.parse(normalised)
    }
}

/// Durations in Go's `time.ParseDuration` syntax, which `step` uses: an optional sign and a sequence
/// of decimal numbers with units, e.g. `8760h`, `1h30m`, `-5m`, `1.5h`, `300ms`. Also `d` for days.
enum GoDuration {
    /// The duration in seconds, or nil when `text` is not a duration.
    static func parse(_ text: String) -> TimeInterval? {
        var rest = Substring(text)
        var sign = 1.0
        if rest.first == "-" || rest.first == "+" {
            if rest.first == "-" { sign = -1 }
            rest = rest.dropFirst()
        }
        if rest == "0" { return 0 }
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1,
                let value = Double(number.hasPrefix(".") ? "0" + number : String(number))
            else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard let scale = scales[String(unit)] else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
        }
        return sign * total
    }

    private static let scales: [String: Double] = [
        "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400,
    ]
}
