import ArgumentParser
import StarlingAPI
import StarlingCore

/// `starling delete KIND NAME... [-n NS]` or `starling delete -f FILE`.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete resources by name or by file.")

    @OptionGroup var context: ContextOptions

    @Argument(help: "KIND NAME [NAME...]")
    var arguments: [String] = []

    @Option(name: .shortAndLong, help: "Namespace (default: default).")
    var namespace: String?

    @Option(name: .shortAndLong, help: "Delete the resources a file describes.")
    var filename: String?

    @Flag(help: "Do not fail when a resource does not exist.")
    var ignoreNotFound = false

    func validate() throws {
        if filename == nil {
            guard arguments.count >= 2 else { throw ValidationError("give KIND and at least one NAME, or -f FILE") }
            guard ResourceKind.lookup(arguments[0]) != nil else {
                throw ValidationError("unknown kind \"\(arguments[0])\"; known: \(ResourceKind.all.map { $0.plural }.joined(separator: ", "))")
            }
        } else if !arguments.isEmpty {
            throw ValidationError("give either -f FILE or KIND NAME, not both")
        }
    }

    func run() async throws {
        var keys: [ResourceKey] = []
        if let filename {
            let text = try InputFile.read(filename)
            do {
                keys = try ResourceDecoder.decode(text, source: filename).map { r in
                    let ns = (namespace ?? r.metadata.namespace) ?? "default"
                    return ResourceKey(kind: r.kind, namespace: ResourceKind.named(r.kind)?.namespaced == true ? ns : nil, name: r.metadata.name)
                }
            } catch { throw CLIError(error.description, hint: "nothing was deleted") }
        } else if let kind = ResourceKind.lookup(arguments[0]) {
            keys = arguments.dropFirst().map { ResourceKey(kind: kind.name, namespace: kind.namespaced ? (namespace ?? "default") : nil, name: $0) }
        }
        let resolved = try context.resolve()
        let ignore = ignoreNotFound
        try await ControllerClient.with(resolved) { client in
            for key in keys {
                var request = Starling_V1_DeleteRequest()
                request.kind = key.kind
                request.namespace = key.namespace ?? ""
                request.name = key.name
                do {
                    _ = try await client.resources.delete(request)
                    print("\(key.kind.lowercased()) \"\(key.name)\" deleted")
                } catch let error as RPCError where error.code == .notFound && ignore {
                    continue
                }
            }
        }
    }
}

import GRPCCore
