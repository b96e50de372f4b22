/// Builds the field paths that errors carry: `spec.backends[0].weight`,
/// `metadata.labels["mirror.starling.io/exported"]`.
enum FieldPath {
    /// `parent.key`, or `parent["key"]` when the key is not a plain identifier.
    static func child(_ parent: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { s in
            (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "_" || s == "-"
        }
        if plain { return parent.isEmpty ? key : "\(parent).\(key)" }
        return "\(parent)[\(JSONTextWriter.quoted(key))]"
    }

    /// `parent[index]`.
    static func index(_ parent: String, _ index: Int) -> String { "\(parent)[\(index)]" }

    /// `prefix.path` (or `prefix[..]` when the path starts with a subscript).
    static func join(_ prefix: String, _ path: String?) -> String {
        guard let path, !path.isEmpty else { return prefix }
        if prefix.isEmpty { return path }
        return path.hasPrefix("[") ? prefix + path : "\(prefix).\(path)"
    }
}
