import Foundation

/// The contents of a `Secret`: `type`, and `data` (base64 in documents) merged with
/// `stringData` (plain text, which wins on a shared key, as in Kubernetes).
public struct SecretSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .secret }

    /// The Secret's type (default `Opaque`).
    public var type: String
    /// Decoded values by key.
    public var data: [String: [UInt8]]

    public init(type: String = "Opaque", data: [String: [UInt8]] = [:]) {
        self.type = type
        self.data = data
    }

    /// A Secret of UTF-8 strings.
    public init(type: String = "Opaque", strings: [String: String]) {
        self.init(type: type, data: strings.mapValues { Array($0.utf8) })
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let root = FieldReader(resource.body, path: "")
        let type = try root.string("type") ?? "Opaque"
        var data: [String: [UInt8]] = [:]
        if let encoded = try root.stringMap("data") {
            for (key, value) in encoded.sorted(by: { $0.key < $1.key }) {
                try Self.checkKey(key, path: FieldPath.child("data", key))
                guard let bytes = Data(base64Encoded: value) else {
                    throw ResourceError(
                        .invalidValue, "expected base64 (use stringData for plain text)",
                        fieldPath: FieldPath.child("data", key))
                }
                data[key] = Array(bytes)
            }
        }
        if let plain = try root.stringMap("stringData") {
            for (key, value) in plain.sorted(by: { $0.key < $1.key }) {
                try Self.checkKey(key, path: FieldPath.child("stringData", key))
                data[key] = Array(value.utf8)
            }
        }
        self.init(type: type, data: data)
    }

    /// Secret keys are made of letters, digits, `-`, `_` and `.`, as in Kubernetes.
    private static func checkKey(_ key: String, path: String) throws(ResourceError) {
        let valid = !key.isEmpty && key.utf8.count <= 253 && key != "." && key != ".."
            && key.unicodeScalars.allSatisfy { s in
                s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "-" || s == "_" || s == ".")
            }
        guard valid else {
            throw ResourceError(
                .invalidValue, "invalid key \(JSONTextWriter.quoted(key)): use letters, digits, '-', '_' and '.'",
                fieldPath: path)
        }
    }

    /// The value stored under `key`.
    public func value(_ key: String) -> [UInt8]? { data[key] }

    /// The value under `key` as UTF-8 text, nil when absent or not valid UTF-8.
    public func string(_ key: String) -> String? {
        data[key].flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// `type` and `data` (base64, keys sorted).
    public var body: JSONObject {
        let encoded = data.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string(Data($0.value).base64EncodedString())) }
        return JSONObject([("type", .string(type)), ("data", .object(JSONObject(encoded)))])
    }
}
