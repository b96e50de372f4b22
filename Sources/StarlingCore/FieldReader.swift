/// Reads typed fields out of a `JSONObject`, naming the field's full path in every error
/// (`spec.ports[1].port: expected an integer, got "http"`).
///
/// A field set to `null` reads as absent, as in Kubernetes.
struct FieldReader {
    let object: JSONObject
    /// The path of `object` itself, e.g. `spec.probeSpec`; empty at the document root.
    let path: String

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    /// The path of a field of this object.
    func at(_ key: String) -> String { FieldPath.child(path, key) }

    /// The value of `key`, nil when absent or null.
    func value(_ key: String) -> JSONValue? {
        switch object[key] {
        case nil, .null?: nil
        case let value?: value
        }
    }

    func missing(_ key: String) -> ResourceError {
        ResourceError(.missingField, "required field is missing", fieldPath: at(key))
    }

    func invalid(_ key: String, _ message: String) -> ResourceError {
        ResourceError(.invalidValue, message, fieldPath: at(key))
    }

    func string(_ key: String) throws(ResourceError) -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let s) = value else {
            throw invalid(key, "expected a string, got \(Self.describe(value))")
        }
        return s
    }

    /// A string that must be present and non-empty.
    func requiredString(_ key: String) throws(ResourceError) -> String {
        guard let s = try string(key) else { throw missing(key) }
        guard !s.isEmpty else { throw invalid(key, "must not be empty") }
        return s
    }

    func int(_ key: String) throws(ResourceError) -> Int64? {
        guard let value = value(key) else { return nil }
        guard let i = value.intValue, value.stringValue == nil else {
            throw invalid(key, "expected an integer, got \(Self.describe(value))")
        }
        return i
    }

    /// A TCP/UDP port number, 1–65535.
    func port(_ key: String) throws(ResourceError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let i = value.intValue, value.stringValue == nil, (1...65535).contains(i) else {
            throw invalid(key, "expected a port number from 1 to 65535, got \(Self.describe(value))")
        }
        return Int(i)
    }

    func bool(_ key: String) throws(ResourceError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let b) = value else {
            throw invalid(key, "expected true or false, got \(Self.describe(value))")
        }
        return b
    }

    func object(_ key: String) throws(ResourceError) -> FieldReader? {
        guard let value = value(key) else { return nil }
        guard case .object(let o) = value else {
            throw invalid(key, "expected a mapping, got \(Self.describe(value))")
        }
        return FieldReader(o, path: at(key))
    }

    func requiredObject(_ key: String) throws(ResourceError) -> FieldReader {
        guard let o = try object(key) else { throw missing(key) }
        return o
    }

    func array(_ key: String) throws(ResourceError) -> [JSONValue]? {
        guard let value = value(key) else { return nil }
        guard case .array(let a) = value else {
            throw invalid(key, "expected a list, got \(Self.describe(value))")
        }
        return a
    }

    /// A list whose elements are all mappings, each with its own path (`spec.ports[2]`).
    func objects(_ key: String) throws(ResourceError) -> [FieldReader]? {
        guard let items = try array(key) else { return nil }
        var readers: [FieldReader] = []
        for (i, item) in items.enumerated() {
            let itemPath = FieldPath.index(at(key), i)
            guard case .object(let o) = item else {
                throw ResourceError(.invalidValue, "expected a mapping, got \(Self.describe(item))", fieldPath: itemPath)
            }
            readers.append(FieldReader(o, path: itemPath))
        }
        return readers
    }

    /// A list of strings.
    func strings(_ key: String) throws(ResourceError) -> [String]? {
        guard let items = try array(key) else { return nil }
        var result: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                throw ResourceError(
                    .invalidValue, "expected a string, got \(Self.describe(item))", fieldPath: FieldPath.index(at(key), i))
            }
            result.append(s)
        }
        return result
    }

    /// A mapping whose values are all strings (labels, annotations, selectors).
    func stringMap(_ key: String) throws(ResourceError) -> [String: String]? {
        guard let reader = try object(key) else { return nil }
        var result: [String: String] = [:]
        for (k, v) in reader.object {
            guard case .string(let s) = v else {
                var hint = ""
                if case .bool = v { hint = " (quote it: \"\(Self.plain(v))\")" }
                if case .int = v { hint = " (quote it: \"\(Self.plain(v))\")" }
                if case .double = v { hint = " (quote it)" }
                throw ResourceError(
                    .invalidValue, "expected a string, got \(Self.describe(v))\(hint)", fieldPath: reader.at(k))
            }
            result[k] = s
        }
        return result
    }

    /// Fails when the object has a field outside `known`; used where a typo would otherwise be
    /// silently ignored.
    func refuseUnknown(_ known: Set<String>) throws(ResourceError) {
        for key in object.keys where !known.contains(key) {
            throw ResourceError(
                .invalidValue, "unknown field; expected one of: \(known.sorted().joined(separator: ", "))",
                fieldPath: at(key))
        }
    }

    /// A short description of a value for messages: `"abc"`, `50`, `true`, `null`, `a list`.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): "\(i)"
        case .double(let d): JSONTextWriter.number(d) == "null" ? YAMLTextWriter.number(d) : "\(d)"
        case .string(let s): JSONTextWriter.quoted(s.count > 80 ? String(s.prefix(80)) + "…" : s)
        case .array: "a list"
        case .object: "a mapping"
        }
    }

    private static func plain(_ value: JSONValue) -> String {
        switch value {
        case .bool(let b): b ? "true" : "false"
        case .int(let i): "\(i)"
        default: describe(value)
        }
    }
}
