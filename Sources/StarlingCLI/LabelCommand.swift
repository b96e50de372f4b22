import ArgumentParser
import StarlingAPI
import StarlingCore

/// `starling label KIND NAME key=value... key-... [--overwrite]`, with kubectl's semantics:
/// changing an existing label needs `--overwrite`; `key-` removes a label.
struct LabelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "label", abstract: "Add, change or remove labels of a resource.")

    @OptionGroup var context: ContextOptions

    @Argument(help: "The kind (svc, ...).")
    var kind: String

    @Argument(help: "The resource's name.")
    var name: String

    @Argument(help: "key=value to set, key- to remove.")
    var changes: [String]

    @Option(name: .shortAndLong, help: "Namespace (default: default).")
    var namespace: String?

    @Flag(help: "Allow changing labels that already have a value.")
    var overwrite = false

    enum Change: Equatable {
        case set(String, String)
        case remove(String)
    }

    static func parse(_ text: String) throws(ValidationError) -> Change {
        if text.hasSuffix("-"), !text.contains("=") {
            return .remove(String(text.dropLast()))
        }
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw ValidationError("\"\(text)\" is neither key=value nor key-")
        }
        return .set(String(parts[0]), String(parts[1]))
    }

    /// Applies changes to labels; throws when a label would change without `overwrite`.
    static func apply(_ changes: [Change], to labels: [String: String], overwrite: Bool) throws(CLIError) -> (labels: [String: String], warnings: [String]) {
        var result = labels
        var warnings: [String] = []
        for change in changes {
            switch change {
            case .set(let k, let v):
                if let old = result[k], old != v, !overwrite {
                    throw CLIError("'\(k)' already has a value (\(old)), and --overwrite is false")
                }
                result[k] = v
            case .remove(let k):
                if result.removeValue(forKey: k) == nil { warnings.append("label \"\(k)\" not found.") }
            }
        }
        return (result, warnings)
    }

    func validate() throws {
        guard ResourceKind.lookup(kind) != nil else { throw ValidationError("unknown kind \"\(kind)\"") }
        guard !changes.isEmpty else { throw ValidationError("give at least one key=value or key-") }
        for c in changes { _ = try Self.parse(c) }
    }

    func run() async throws {
        guard let kind = ResourceKind.lookup(kind) else { return }
        let parsed = try changes.map(Self.parse)
        let resolved = try context.resolve()
        let (name, namespace, overwrite) = (self.name, self.namespace, self.overwrite)
        try await ControllerClient.with(resolved) { client in
            var get = Starling_V1_GetRequest()
            get.kind = kind.name
            get.namespace = namespace ?? ""
            get.name = name
            var resource = try ResourceDecoder.decodeStored(try await client.resources.get(get).resourceJson)
            let (labels, warnings) = try Self.apply(parsed, to: resource.metadata.labels, overwrite: overwrite)
            warnings.forEach { print($0) }
            if labels == resource.metadata.labels {
                print("\(kind.name.lowercased())/\(name) not labeled")
                return
            }
            resource.metadata.labels = labels
            do throws(ResourceError) { try ResourceValidator.validate(resource) } catch { throw CLIError(error.description) }
            var apply = Starling_V1_ApplyRequest()
            apply.resourcesJson = [ResourceEncoder.compactJSON(resource)]
            apply.source = "label"
            _ = try await client.resources.apply(apply)
            print("\(kind.name.lowercased())/\(name) labeled")
        }
    }
}
