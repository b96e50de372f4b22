import ArgumentParser
import Foundation
import StarlingAPI
import StarlingCore

/// `starling apply -f FILE|-`: validates every document before anything is sent, then applies
/// them in batches; each batch is one transaction at the controller. When the controller fails
/// mid-way the command says exactly which resources were applied and which were not.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Create or update resources from YAML or JSON files (- reads standard input).")

    @OptionGroup var context: ContextOptions

    @Option(name: .shortAndLong, help: "A file of YAML or JSON documents, or - for standard input. Repeatable.")
    var filename: [String]

    @Option(name: .shortAndLong, help: "Namespace for documents that name none.")
    var namespace: String?

    @Option(help: "Resources per request (each request is applied atomically).")
    var batchSize: Int = 500

    func validate() throws {
        guard !filename.isEmpty else { throw ValidationError("give at least one -f FILE (or -f - for standard input)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    func run() async throws {
        var resources: [(resource: Resource, source: String)] = []
        for file in filename {
            let text = try InputFile.read(file)
            do {
                for resource in try ResourceDecoder.decode(text, source: file) {
                    resources.append((namespace.map(resource.withDefaultNamespace) ?? resource, file))
                }
            } catch {
                throw CLIError("\(error.description)", hint: "nothing was applied")
            }
        }
        guard !resources.isEmpty else { throw CLIError("no resources found in \(filename.joined(separator: ", "))") }
        let resolved = try context.resolve()
        let batches = stride(from: 0, to: resources.count, by: batchSize).map {
            Array(resources[$0..<min($0 + batchSize, resources.count)])
        }
        let showProgress = resources.count > batchSize
        try await ControllerClient.with(resolved, timeout: .seconds(60)) { client in
            var done = 0
            for batch in batches {
                var request = Starling_V1_ApplyRequest()
                request.resourcesJson = batch.map { ResourceEncoder.compactJSON($0.resource) }
                request.source = Set(batch.map(\.source)).sorted().joined(separator: ",")
                let response: Starling_V1_ApplyResponse
                do {
                    response = try await client.resources.apply(request)
                } catch {
                    let notApplied = resources[done...]
                    let names = notApplied.prefix(10).map { "\($0.resource.kind.lowercased())/\($0.resource.metadata.name)" }
                    throw CLIError(
                        "apply failed after \(done) of \(resources.count) resources: \(Self.message(error))\n"
                            + "not applied (\(notApplied.count)): \(names.joined(separator: ", "))\(notApplied.count > 10 ? ", ..." : "")",
                        hint: "fix the cause and run the same apply again: resources already applied come back unchanged")
                }
                done += batch.count
                if showProgress {
                    FileHandle.standardError.write(Data("applied \(done)/\(resources.count)\n".utf8))
                } else {
                    for r in response.results {
                        print("\(r.kind.lowercased())/\(r.name) \(r.outcome)")
                    }
                }
            }
            if showProgress {
                print("\(resources.count) resources applied")
            }
        }
    }

    static func message(_ error: any Error) -> String {
        if let e = error as? any RPCErrorText { return e.text }
        return "\(error)"
    }
}

import GRPCCore

/// The message part of an RPC failure, without the status boilerplate.
protocol RPCErrorText { var text: String { get } }
extension RPCError: RPCErrorText {
    var text: String { "\(message) (\(code))" }
}

/// Reads `-f` arguments: a path or `-` for standard input, with errors naming the file.
enum InputFile {
    static let maximumSize = 64 * 1024 * 1024

    static func read(_ path: String) throws -> String {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("\(path): no such file")
            }
            guard let d = FileManager.default.contents(atPath: path) else {
                throw CLIError("\(path): cannot be read (check its permissions)")
            }
            data = d
        }
        guard data.count <= maximumSize else {
            throw CLIError("\(path): \(data.count / 1_048_576) MB is too large (limit \(maximumSize / 1_048_576) MB)", hint: "split it into several files")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError("\(path): not UTF-8 text")
        }
        return text
    }
}
