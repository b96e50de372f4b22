/// Kubernetes resource quantities (`50`, `500m`, `1k`, `1.5`, `2Ki`, `1e3`), as SMI v1alpha1
/// TrafficSplit weights use them.
public enum Quantity {
    /// The quantity in thousandths: `"500m"` → 500, `"1"` → 1000, `"1k"` → 1_000_000.
    ///
    /// Like Kubernetes' `MilliValue`, a quantity finer than a thousandth rounds up (`"1n"` → 1).
    /// Throws `invalidQuantity` for malformed text or a value that does not fit in `Int64`.
    public static func parseMilli(_ text: String) throws(ResourceError) -> Int64 {
        let bad = ResourceError(
            .invalidQuantity, "expected a quantity such as 50, 500m, 1.5 or 1k, got \(JSONTextWriter.quoted(text))")
        var bytes = Array(text.utf8)[...]
        guard !bytes.isEmpty else { throw bad }
        var negative = false
        if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") {
            negative = bytes.first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        // Digits with at most one '.'.
        var digits: [UInt8] = []
        var fractionDigits = 0
        var sawPoint = false
        var sawDigit = false
        while let b = bytes.first, isDigit(b) || b == UInt8(ascii: ".") {
            if b == UInt8(ascii: ".") {
                if sawPoint { throw bad }
                sawPoint = true
            } else {
                sawDigit = true
                digits.append(b - UInt8(ascii: "0"))
                if sawPoint { fractionDigits += 1 }
            }
            bytes = bytes.dropFirst()
        }
        guard sawDigit else { throw bad }
        // Suffix: a binary or decimal SI suffix, or a decimal exponent.
        let suffix = String(decoding: bytes, as: UTF8.self)
        var decimalExponent = 0
        var binaryMultiplier: Int64 = 1
        switch suffix {
        case "": break
        case "n": decimalExponent = -9
        case "u": decimalExponent = -6
        case "m": decimalExponent = -3
        case "k": decimalExponent = 3
        case "M": decimalExponent = 6
        case "G": decimalExponent = 9
        case "T": decimalExponent = 12
        case "P": decimalExponent = 15
        case "E": decimalExponent = 18
        case "Ki": binaryMultiplier = 1 << 10
        case "Mi": binaryMultiplier = 1 << 20
        case "Gi": binaryMultiplier = 1 << 30
        case "Ti": binaryMultiplier = 1 << 40
        case "Pi": binaryMultiplier = 1 << 50
        case "Ei": binaryMultiplier = 1 << 60
        default:
            guard suffix.first == "e" || suffix.first == "E", let exp = Int(suffix.dropFirst()), abs(exp) < 100,
                suffix.dropFirst().allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" })
            else { throw bad }
            decimalExponent = exp
        }
        // value = digits × 10^(exponent − fractionDigits) × multiplier, in thousandths.
        while digits.count > 1, digits.first == 0 { digits.removeFirst() }
        var mantissa: Int64 = 0
        for d in digits {
            let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(Int64(d))
            if o1 || o2 { throw tooLarge(text) }
            mantissa = m2
        }
        let (scaled, overflow) = mantissa.multipliedReportingOverflow(by: binaryMultiplier)
        if overflow { throw tooLarge(text) }
        var value = scaled
        let scale = decimalExponent - fractionDigits + 3
        if scale >= 0 {
            for _ in 0..<scale {
                let (v, o) = value.multipliedReportingOverflow(by: 10)
                if o { if value == 0 { break }; throw tooLarge(text) }
                value = v
            }
        } else if value != 0 {
            var divisor: Int64 = 1
            var exhausted = false
            for _ in 0..<(-scale) {
                let (d, o) = divisor.multipliedReportingOverflow(by: 10)
                if o { exhausted = true; break }
                divisor = d
            }
            // Round up, as Kubernetes does, so a positive weight never becomes zero.
            value = exhausted ? 1 : value / divisor + (value % divisor == 0 ? 0 : 1)
        }
        return negative ? -value : value
    }

    /// A milli-value written back as a quantity: `50000` → `"50"`, `500` → `"500m"`.
    public static func formatMilli(_ milli: Int64) -> String {
        milli % 1000 == 0 ? String(milli / 1000) : "\(milli)m"
    }

    private static func tooLarge(_ text: String) -> ResourceError {
        ResourceError(.invalidQuantity, "quantity \(JSONTextWriter.quoted(text)) is too large")
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
