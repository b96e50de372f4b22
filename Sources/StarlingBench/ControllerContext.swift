import ArgumentParser
import Foundation
import StarlingCore
import Yams

/// Where a controller is and how to talk to it, read from a Starling config file (the file
/// `starling cluster credentials NAME --export-file FILE` writes): the API address, the
/// controller's certificate to pin, and the admin token.
///
/// The benchmark reads only the fields it needs, so that it does not depend on the CLI target.
struct ControllerContext: Sendable {
    var name: String
    /// Every replica of the controller's API (`server: A:8086,B:8086,C:8086`).
    var replicas: [HostPort]
    var caPEM: String
    var token: String

    /// `HOST:PORT[,HOST:PORT…]` as the config file spells it.
    var server: String { replicas.map(\.description).joined(separator: ",") }

    /// One context per replica, each listing that replica alone: a client made from one connects
    /// to its replica only, so a benchmark knows which replica answered each call (a client of the
    /// whole context balances calls over the replicas itself and does not say which took a call).
    var eachReplica: [ControllerContext] {
        replicas.map { ControllerContext(name: name, replicas: [$0], caPEM: caPEM, token: token) }
    }

    /// The context `requested` (else the current one, else the only one) of the config at `path`.
    static func load(path: String, requested: String?) throws -> ControllerContext {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BenchError("cannot read the config file \(path); export one with `starling cluster credentials NAME --export-file \(path)`")
        }
        let file: ConfigFile
        do {
            file = try YAMLDecoder().decode(ConfigFile.self, from: String(decoding: data, as: UTF8.self))
        } catch {
            throw BenchError("\(path) is not a Starling config file: \(error)")
        }
        let names = file.contexts.map(\.name).joined(separator: ", ")
        let chosen: ConfigFile.Entry
        if let wanted = requested ?? file.currentContext {
            guard let match = file.contexts.first(where: { $0.name == wanted }) else {
                throw BenchError("context \(wanted) is not in \(path) (have: \(names.isEmpty ? "none" : names))")
            }
            chosen = match
        } else if file.contexts.count == 1 {
            chosen = file.contexts[0]
        } else {
            throw BenchError("\(path) has \(file.contexts.count) contexts and no current-context; pass --context (have: \(names))")
        }
        return try ControllerContext(chosen, path: path)
    }

    private init(_ entry: ConfigFile.Entry, path: String) throws {
        let whose = "context \(entry.name) in \(path)"
        guard let replicas = HostPort.list(parsing: entry.server.replacingOccurrences(of: "localhost", with: "127.0.0.1")) else {
            throw BenchError("server '\(entry.server)' of \(whose) is not HOST:PORT (or several, separated by commas)")
        }
        let trimmed = entry.certificateAuthorityData.trimmingCharacters(in: .whitespacesAndNewlines)
        let pem: String
        if trimmed.hasPrefix("-----BEGIN") {
            pem = trimmed + "\n"
        } else if let decoded = Data(base64Encoded: trimmed, options: .ignoreUnknownCharacters),
            let text = String(data: decoded, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----")
        {
            pem = text
        } else {
            throw BenchError("certificate-authority-data of \(whose) is neither a PEM certificate nor base64 of one")
        }
        guard !entry.token.isEmpty else { throw BenchError("the token of \(whose) is empty") }
        self.init(name: entry.name, replicas: replicas, caPEM: pem, token: entry.token)
    }

    private init(name: String, replicas: [HostPort], caPEM: String, token: String) {
        self.name = name
        self.replicas = replicas
        self.caPEM = caPEM
        self.token = token
    }

    /// The parts of the config file the benchmark reads.
    private struct ConfigFile: Decodable {
        struct Entry: Decodable {
            var name: String
            var server: String
            var certificateAuthorityData: String
            var token: String

            enum CodingKeys: String, CodingKey {
                case name, server, token
                case certificateAuthorityData = "certificate-authority-data"
            }
        }

        var currentContext: String?
        var contexts: [Entry]

        enum CodingKeys: String, CodingKey {
            case currentContext = "current-context"
            case contexts
        }
    }
}

/// `--config FILE` and `--context NAME`: the controller a benchmark talks to.
struct ContextOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The Starling config file (`starling cluster credentials NAME --export-file FILE`).", valueName: "file"))
    var config: String?

    @Option(help: "The context to use (default: the file's current-context, or its only context).")
    var context: String?

    /// A usage error when `--config` is missing: call from the command's `validate()` when the
    /// command talks to a controller.
    func validateRequired() throws {
        guard let config, !config.isEmpty else {
            throw ValidationError("--config FILE is required: export one with `starling cluster credentials NAME --export-file FILE`")
        }
        if let context, context.isEmpty { throw ValidationError("--context must not be empty") }
    }

    /// The chosen context (after ``validateRequired()``).
    func resolve() throws -> ControllerContext {
        try ControllerContext.load(path: config ?? "", requested: context)
    }
}
