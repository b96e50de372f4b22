/// YAML 1.2 core-schema rules for plain scalars: how a plain scalar reads (null, bool, int, float
/// or string), and whether a string must be quoted to read back as a string.
enum YAMLScalars {
    /// The value of a plain (unquoted, untagged) scalar under the YAML 1.2 core schema.
    static func resolvePlain(_ s: String) -> JSONValue {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        if let number = number(s) { return number }
        return .string(s)
    }

    /// The number a core-schema int or float scalar denotes, or nil when `s` is neither.
    static func number(_ s: String) -> JSONValue? {
        let bytes = Array(s.utf8)
        guard let first = bytes.first else { return nil }
        // 0o17 and 0xFF (no sign in the core schema).
        if bytes.count > 2, first == UInt8(ascii: "0") {
            let body = String(decoding: bytes[2...], as: UTF8.self)
            if bytes[1] == UInt8(ascii: "o"), bytes[2...].allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) {
                if let i = Int64(body, radix: 8) { return .int(i) }
                return UInt64(body, radix: 8).map { .double(Double($0)) } ?? .string(s)
            }
            if bytes[1] == UInt8(ascii: "x"), bytes[2...].allSatisfy(isHexDigit) {
                if let i = Int64(body, radix: 16) { return .int(i) }
                return UInt64(body, radix: 16).map { .double(Double($0)) } ?? .string(s)
            }
        }
        // [-+]? ( \.[0-9]+ | [0-9]+ (\.[0-9]*)? ) ([eE][-+]?[0-9]+)?
        var i = 0
        var sign = ""
        if first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            sign = first == UInt8(ascii: "-") ? "-" : ""
            i = 1
        }
        let intStart = i
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        let intDigits = String(decoding: bytes[intStart..<i], as: UTF8.self)
        var fracDigits: String?
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let fracStart = i
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            let digits = String(decoding: bytes[fracStart..<i], as: UTF8.self)
            if intDigits.isEmpty && digits.isEmpty { return nil }
            fracDigits = digits
        } else if intDigits.isEmpty {
            return nil
        }
        var exponent: String?
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var expSign = ""
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                expSign = bytes[i] == UInt8(ascii: "-") ? "-" : ""
                i += 1
            }
            let expStart = i
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            if expStart == i { return nil }
            exponent = expSign + String(decoding: bytes[expStart..<i], as: UTF8.self)
        }
        guard i == bytes.count else { return nil }
        if fracDigits == nil, exponent == nil {
            if let value = Int64(sign + intDigits) { return .int(value) }
        }
        let normalized = sign + (intDigits.isEmpty ? "0" : intDigits) + "." + (fracDigits.flatMap { $0.isEmpty ? nil : $0 } ?? "0")
            + (exponent.map { "e" + $0 } ?? "")
        return Double(normalized).map(JSONValue.double)
    }

    /// True when `s` written plain would not read back as the same string — by the core schema,
    /// by older YAML 1.1 readers (`yes`, `on`, `0777`, timestamps), or by YAML's syntax.
    static func needsQuoting(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return true }
        if case .string = resolvePlain(s) {} else { return true }
        if yaml11Words.contains(s.lowercased()) { return true }
        if looksNumeric(s) || looksLikeTimestamp(s) { return true }
        if " \t".unicodeScalars.contains(first) || " \t".unicodeScalars.contains(last) { return true }
        if "-?:,[]{}#&*!|>'\"%@`".unicodeScalars.contains(first) { return true }
        if s.hasPrefix("...") || s.hasSuffix(":") { return true }
        if s.contains(": ") || s.contains(" #") || s.contains(":\t") || s.contains("\t#") { return true }
        for scalar in s.unicodeScalars where !isPrintable(scalar) || scalar == "\t" || scalar == "\n" || scalar == "\r" {
            return true
        }
        return false
    }

    /// Printable in YAML's sense (what may appear unescaped in a scalar).
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D, 0x20...0x7E: return true
        case 0x85: return true
        case 0xA0...0xD7FF: return scalar.value != 0x2028 && scalar.value != 0x2029
        case 0xE000...0xFFFD: return scalar.value != 0xFEFF
        case 0x10000...0x10FFFF: return true
        default: return false
        }
    }

    /// YAML 1.1 booleans and nulls that some readers still resolve.
    private static let yaml11Words: Set<String> = ["y", "n", "yes", "no", "on", "off", "~", "null", "true", "false"]

    /// Starts like a number (digit, or sign or dot then digit) and holds only characters that
    /// YAML 1.1 numbers use (hex, octal, binary, sexagesimal, underscores, exponents).
    private static func looksNumeric(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: ".") {
            i += 1
        }
        guard i < bytes.count, isDigit(bytes[i]) else { return false }
        return bytes.allSatisfy { b in
            isHexDigit(b) || "xXoObB_:.+-".utf8.contains(b)
        }
    }

    /// `2024-01-31...` reads as a timestamp in YAML 1.1.
    private static func looksLikeTimestamp(_ s: String) -> Bool {
        let bytes = Array(s.utf8.prefix(10))
        guard bytes.count >= 8 else { return false }
        return bytes[0..<4].allSatisfy(isDigit) && bytes[4] == UInt8(ascii: "-")
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    private static func isHexDigit(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
    }
}
