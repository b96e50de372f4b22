/// Writes `JSONValue`s as block-style YAML the way `kubectl get -o yaml` lays it out: two-space
/// indentation, sequences under a key at the key's own indentation, strings quoted only when a
/// YAML reader would otherwise mis-read them, and multi-line strings (PEM) as literal blocks.
enum YAMLTextWriter {
    /// One YAML document (without a `---` line) for a mapping.
    static func document(_ object: JSONObject) -> String {
        var out = ""
        if object.isEmpty { return "{}\n" }
        writeMapping(object, indent: 0, firstPrefix: nil, into: &out)
        return out
    }

    // MARK: - Collections

    /// The longest key written as `key: value`. A YAML reader takes at most 1024 characters as
    /// an implicit key (libyaml counts to the `:`); a longer key is written explicitly,
    /// `? key` then `: value`, which has no limit.
    static let maximumImplicitKeyLength = 1000

    private static func writeMapping(_ object: JSONObject, indent: Int, firstPrefix: String?, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for (i, entry) in object.entries.enumerated() {
            out += (i == 0 ? firstPrefix : nil) ?? pad
            let written = key(entry.key)
            if written.unicodeScalars.count > maximumImplicitKeyLength {
                out += "? " + written + "\n" + pad
            } else {
                out += written
            }
            out += ":"
            switch entry.value {
            case .object(let child) where !child.isEmpty:
                out += "\n"
                writeMapping(child, indent: indent + 2, firstPrefix: nil, into: &out)
            case .array(let items) where !items.isEmpty:
                out += "\n"
                writeSequence(items, indent: indent, firstPrefix: nil, into: &out)
            default:
                out += " "
                writeInline(entry.value, indent: indent + 2, into: &out)
            }
        }
    }

    private static func writeSequence(_ items: [JSONValue], indent: Int, firstPrefix: String?, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for (i, item) in items.enumerated() {
            let dash = ((i == 0 ? firstPrefix : nil) ?? pad) + "- "
            switch item {
            case .object(let child) where !child.isEmpty:
                writeMapping(child, indent: indent + 2, firstPrefix: dash, into: &out)
            case .array(let nested) where !nested.isEmpty:
                writeSequence(nested, indent: indent + 2, firstPrefix: dash, into: &out)
            default:
                out += dash
                writeInline(item, indent: indent + 2, into: &out)
            }
        }
    }

    /// A scalar or empty collection after `key: ` or `- `, ending with a newline. `indent` is
    /// the indentation of a literal block's content.
    private static func writeInline(_ value: JSONValue, indent: Int, into out: inout String) {
        switch value {
        case .null: out += "null\n"
        case .bool(let b): out += b ? "true\n" : "false\n"
        case .int(let i): out += "\(i)\n"
        case .double(let d): out += number(d) + "\n"
        case .object: out += "{}\n"
        case .array: out += "[]\n"
        case .string(let s):
            if canWriteLiteralBlock(s) {
                writeLiteralBlock(s, indent: indent, into: &out)
            } else if YAMLScalars.needsQuoting(s) {
                out += doubleQuoted(s) + "\n"
            } else {
                out += s + "\n"
            }
        }
    }

    // MARK: - Scalars

    /// A double as a core-schema float: `1.5`, `1e+20`, `.inf`, `.nan`.
    static func number(_ d: Double) -> String {
        if d.isNaN { return ".nan" }
        if d.isInfinite { return d < 0 ? "-.inf" : ".inf" }
        return d.description
    }

    private static func key(_ k: String) -> String {
        YAMLScalars.needsQuoting(k) ? doubleQuoted(k) : k
    }

    /// Multi-line text whose lines can be kept as they are: printable, with a first content line
    /// that does not start with blanks (which would change the detected indentation).
    private static func canWriteLiteralBlock(_ s: String) -> Bool {
        guard s.contains("\n") else { return false }
        for scalar in s.unicodeScalars {
            if scalar == "\n" { continue }
            if scalar == "\r" || scalar == "\u{85}" || scalar == "\u{2028}" || scalar == "\u{2029}" { return false }
            if !YAMLScalars.isPrintable(scalar) { return false }
        }
        guard let firstContent = s.split(separator: "\n", omittingEmptySubsequences: true).first else { return false }
        return !(firstContent.hasPrefix(" ") || firstContent.hasPrefix("\t"))
    }

    /// `|`, `|-` or `|+` by the number of trailing newlines, then the lines indented.
    private static func writeLiteralBlock(_ s: String, indent: Int, into out: inout String) {
        var trailing = 0
        for c in s.utf8.reversed() {
            if c == UInt8(ascii: "\n") { trailing += 1 } else { break }
        }
        out += trailing == 0 ? "|-\n" : trailing == 1 ? "|\n" : "|+\n"
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false)
        if trailing > 0 { lines.removeLast() }
        let pad = String(repeating: " ", count: indent)
        for line in lines {
            if !line.isEmpty { out += pad; out += line }
            out += "\n"
        }
    }

    /// A YAML double-quoted scalar with escapes for everything not printable.
    static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\0": out += "\\0"
            case "\u{85}": out += "\\N"
            case "\u{2028}": out += "\\L"
            case "\u{2029}": out += "\\P"
            default:
                if YAMLScalars.isPrintable(scalar) {
                    out.unicodeScalars.append(scalar)
                } else if scalar.value <= 0xFF {
                    out += "\\x" + hex(scalar.value, width: 2)
                } else if scalar.value <= 0xFFFF {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out += "\\U" + hex(scalar.value, width: 8)
                }
            }
        }
        return out + "\""
    }

    private static func hex(_ v: UInt32, width: Int) -> String {
        let digits = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
