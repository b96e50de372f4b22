/// Kubernetes naming rules for object names, namespaces, label keys and values, and annotation
/// keys. Each check returns nil when the value is valid, otherwise the reason it is not.
public enum ResourceNames {
    /// A DNS-1123 label: at most 63 characters of lowercase letters, digits and `-`, starting
    /// and ending with a letter or digit (namespaces, services).
    public static func dns1123LabelProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > 63 { return "must be at most 63 characters (it has \(s.utf8.count))" }
        let bytes = Array(s.utf8)
        guard bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") }) else {
            return "must consist of lowercase letters, digits and '-' (a DNS-1123 label, e.g. 'my-name')"
        }
        guard let first = bytes.first, let last = bytes.last, isLowerAlnum(first), isLowerAlnum(last) else {
            return "must start and end with a lowercase letter or digit (a DNS-1123 label, e.g. 'my-name')"
        }
        return nil
    }

    /// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels.
    public static func dns1123SubdomainProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > 253 { return "must be at most 253 characters (it has \(s.utf8.count))" }
        for part in s.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(part.utf8)
            guard let first = bytes.first, let last = bytes.last,
                bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") }), isLowerAlnum(first), isLowerAlnum(last)
            else {
                return "must consist of lowercase letters, digits, '-' and '.', each dot-separated part starting and "
                    + "ending with a letter or digit (a DNS-1123 subdomain, e.g. 'example.com')"
            }
        }
        return nil
    }

    /// A qualified name as used for label and annotation keys: an optional DNS subdomain prefix
    /// and `/`, then a name of at most 63 characters of letters, digits, `-`, `_` and `.`, starting
    /// and ending with a letter or digit (`app`, `mirror.starling.io/exported`).
    public static func qualifiedNameProblem(_ s: String) -> String? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        let name: Substring
        switch parts.count {
        case 1: name = parts[0]
        case 2:
            if parts[0].isEmpty { return "prefix before '/' must not be empty" }
            if let problem = dns1123SubdomainProblem(String(parts[0])) { return "prefix \(problem)" }
            name = parts[1]
        default: return "must have at most one '/' (prefix/name)"
        }
        if name.isEmpty { return "name part must not be empty" }
        if name.utf8.count > 63 { return "name part must be at most 63 characters" }
        if let problem = labelValueProblem(String(name)) {
            return problem.replacingFirst("value", with: "name part")
        }
        return nil
    }

    /// A label value: empty, or at most 63 characters of letters, digits, `-`, `_` and `.`,
    /// starting and ending with a letter or digit.
    public static func labelValueProblem(_ s: String) -> String? {
        if s.isEmpty { return nil }
        if s.utf8.count > 63 { return "value must be at most 63 characters (it has \(s.utf8.count))" }
        let bytes = Array(s.utf8)
        guard bytes.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
        else { return "value must consist of letters, digits, '-', '_' and '.'" }
        guard let first = bytes.first, let last = bytes.last, isAlnum(first), isAlnum(last) else {
            return "value must start and end with a letter or digit"
        }
        return nil
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        isLowerAlnum(b) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
    }
}

extension String {
    /// The string with the first occurrence of `target` replaced (no Foundation needed).
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        return self[..<range.lowerBound] + replacement + self[range.upperBound...]
    }
}
