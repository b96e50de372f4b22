#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Yams

/// A Starling config file: the contexts (one per cluster the operator can talk to) and which one is
/// current. It plays the role of a kubeconfig and is written `0600` because it holds admin tokens.
///
/// ```yaml
/// apiVersion: starling.io/v1alpha1
/// kind: Config
/// current-context: workload1
/// contexts:
/// - name: workload1
///   cluster-name: workload1
///   server: 127.1.0.1:8086
///   admin-server: 127.1.0.1:9990
///   certificate-authority-data: BASE64-PEM
///   token: ADMIN-TOKEN
/// ```
public struct ContextFile: Codable, Sendable, Equatable {
    /// The only `apiVersion` this version of Starling reads and writes.
    public static let currentAPIVersion = "starling.io/v1alpha1"
    /// The only `kind` a config file may have.
    public static let currentKind = "Config"

    /// One cluster the CLI can talk to, and the credentials to do it with.
    public struct Context: Codable, Sendable, Equatable {
        /// The context's name, what `--context` and `current-context` refer to.
        public var name: String
        /// The name of the cluster the controller serves (its `--cluster-name`).
        public var clusterName: String
        /// The controller's gRPC API, `HOST:PORT`, served over TLS.
        public var server: String
        /// The controller's admin HTTP endpoint (`/ready`, `/live`, `/metrics`), `HOST:PORT`.
        public var adminServer: String?
        /// Base64 of the PEM of the controller's self-signed API certificate, pinned as the only root.
        public var certificateAuthorityData: String
        /// The admin bearer token.
        public var token: String

        public init(
            name: String,
            clusterName: String,
            server: String,
            adminServer: String?,
            certificateAuthorityData: String,
            token: String
        ) {
            self.name = name
            self.clusterName = clusterName
            self.server = server
            self.adminServer = adminServer
            self.certificateAuthorityData = certificateAuthorityData
            self.token = token
        }

        enum CodingKeys: String, CodingKey {
            case name
            case clusterName = "cluster-name"
            case server
            case adminServer = "admin-server"
            case certificateAuthorityData = "certificate-authority-data"
            case token
        }
    }

    /// Always `starling.io/v1alpha1`.
    public var apiVersion: String
    /// Always `Config`.
    public var kind: String
    /// The context used when `--context` is not given.
    public var currentContext: String?
    /// Every context, in file order.
    public var contexts: [Context]

    public init(currentContext: String? = nil, contexts: [Context] = []) {
        self.apiVersion = Self.currentAPIVersion
        self.kind = Self.currentKind
        self.currentContext = currentContext
        self.contexts = contexts
    }

    enum CodingKeys: String, CodingKey {
        case apiVersion
        case kind
        case currentContext = "current-context"
        case contexts
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? Self.currentAPIVersion
        kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? Self.currentKind
        let current = try container.decodeIfPresent(String.self, forKey: .currentContext)
        currentContext = (current?.isEmpty ?? true) ? nil : current
        contexts = try container.decodeIfPresent([Context].self, forKey: .contexts) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(apiVersion, forKey: .apiVersion)
        try container.encode(kind, forKey: .kind)
        try container.encodeIfPresent(currentContext, forKey: .currentContext)
        try container.encode(contexts, forKey: .contexts)
    }

    /// The context called `name`, if any.
    public func context(named name: String) -> Context? {
        contexts.first { $0.name == name }
    }

    /// Adds `context`, replacing any context of the same name in place.
    public mutating func upsert(_ context: Context) {
        if let index = contexts.firstIndex(where: { $0.name == context.name }) {
            contexts[index] = context
        } else {
            contexts.append(context)
        }
    }

    /// Removes the context called `name`, and unsets `current-context` if it named it.
    /// Returns whether there was such a context.
    @discardableResult
    public mutating func remove(contextNamed name: String) -> Bool {
        let before = contexts.count
        contexts.removeAll { $0.name == name }
        if currentContext == name { currentContext = nil }
        return contexts.count != before
    }

    /// The context names, comma-separated, for error messages.
    var namesForMessages: String {
        contexts.isEmpty ? "none" : contexts.map(\.name).joined(separator: ", ")
    }

    /// Checks what the decoder cannot: the version, the kind, names present and unique.
    func validate(path: String) throws(CLIError) {
        guard apiVersion == Self.currentAPIVersion else {
            throw CLIError(
                "\(path): unsupported apiVersion '\(apiVersion)' (this starling reads \(Self.currentAPIVersion))",
                hint: "regenerate it with `starling cluster credentials NAME --export-file \(path)`"
            )
        }
        guard kind == Self.currentKind else {
            throw CLIError("\(path): kind is '\(kind)', expected '\(Self.currentKind)'; is this a Starling config file?")
        }
        var seen: Set<String> = []
        for (index, context) in contexts.enumerated() {
            guard !context.name.isEmpty else {
                throw CLIError("\(path): contexts[\(index)] has an empty name")
            }
            guard seen.insert(context.name).inserted else {
                throw CLIError("\(path): context '\(context.name)' is defined more than once; keep one of them")
            }
        }
    }
}

// MARK: - Reading and writing

/// Reads and validates the config file at `path`.
///
/// Throws a ``CLIError`` naming the path when the file is missing ("no config at PATH"), unreadable,
/// or not a valid Starling config file.
public func loadContextFile(path: String) throws -> ContextFile {
    guard let file = try loadContextFileIfPresent(path: path) else {
        throw CLIError(
            "no config at \(path): create a cluster with `starling cluster create NAME` or pass --config"
        )
    }
    return file
}

/// Writes `file` to `path` atomically (a temporary file in the same directory, then `rename`), with
/// mode `0600`; creates the parent directory (`0700`) if needed.
public func saveContextFile(_ file: ContextFile, path: String) throws {
    let text: String
    do {
        text = try YAMLEncoder().encode(file)
    } catch {
        throw CLIError("could not encode the config for \(path): \(error)")
    }
    try ContextFileIO.writeAtomically(Array(text.utf8), to: path, mode: 0o600)
}

/// Like ``loadContextFile(path:)`` but returns nil when there is no file at `path`.
func loadContextFileIfPresent(path: String) throws -> ContextFile? {
    guard let bytes = try ContextFileIO.readIfPresent(path) else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        return ContextFile()
    }
    let file: ContextFile
    do {
        file = try YAMLDecoder().decode(ContextFile.self, from: text)
    } catch {
        throw CLIError(
            "\(path) is not a valid Starling config file: \(ContextFileIO.describe(decodingError: error))",
            hint: "fix or remove it; a fresh one is written by `starling cluster create NAME`"
        )
    }
    try file.validate(path: path)
    return file
}

/// File helpers shared by the config file and the cluster registry.
enum ContextFileIO {
    /// The contents of `path`, or nil when it does not exist.
    static func readIfPresent(_ path: String) throws(CLIError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw CLIError("cannot read \(path): \(errorString(code))")
        }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw CLIError("cannot read \(path): \(errorString(code))")
            }
            if count == 0 { break }
            result.append(contentsOf: buffer[0..<count])
        }
        return result
    }

    /// Reads `path`, failing with a message naming `what` the file is when it is missing.
    static func readRequired(_ path: String, what: String) throws(CLIError) -> [UInt8] {
        guard let bytes = try readIfPresent(path) else {
            throw CLIError("\(what) \(path) does not exist")
        }
        return bytes
    }

    /// Writes `bytes` to a new temporary file next to `path` with `mode`, syncs it, and renames it
    /// over `path`, so readers see either the old or the new file, never a torn one.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(CLIError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try makeDirectory(directory, mode: 0o700)
        }
        var suffix = SystemRandomNumberGenerator()
        let temporary = "\(path).tmp-\(getpid())-\(String(suffix.next() as UInt32, radix: 16))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw CLIError("cannot write \(path): creating \(temporary) failed: \(errorString(errno))")
        }
        var failure: CLIError?
        if fchmod(fd, mode) != 0 {
            failure = CLIError("cannot write \(path): chmod of \(temporary) failed: \(errorString(errno))")
        }
        var offset = 0
        while failure == nil, offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                failure = CLIError("cannot write \(path): \(errorString(errno))")
            } else {
                offset += written
            }
        }
        if failure == nil, fsync(fd) != 0 {
            failure = CLIError("cannot write \(path): fsync failed: \(errorString(errno))")
        }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 {
            failure = CLIError("cannot write \(path): rename from \(temporary) failed: \(errorString(errno))")
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    /// `mkdir -p` with `mode` for the directories it creates.
    static func makeDirectory(_ path: String, mode: mode_t) throws(CLIError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw CLIError("\(path) exists and is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: Int(mode)]
            )
        } catch {
            throw CLIError("cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    /// `strerror` as a Swift string.
    static func errorString(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// A one-line description of a Yams / Codable decoding error: what was wrong and where.
    static func describe(decodingError error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field '\(key.stringValue)'\(location(context.codingPath))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type\(location(context.codingPath)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription)\(location(context.codingPath))"
        case let yamlError as YamlError:
            return "\(yamlError)".split(separator: "\n").joined(separator: " ")
        default:
            return "\(error)"
        }
    }

    private static func location(_ path: [any CodingKey]) -> String {
        guard !path.isEmpty else { return "" }
        let rendered = path.map { key in
            key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)"
        }.joined()
        return " at \(rendered.hasPrefix(".") ? String(rendered.dropFirst()) : rendered)"
    }
}
