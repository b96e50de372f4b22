import ArgumentParser
import Foundation
import Yams

/// Where a controller is and how to talk to it, read from a Starling config file (the file
/// `starling cluster credentials NAME --export-file FILE` writes): the API address, the
/// controller's certificate to pin, and the admin token.
///
/// The benchmark reads only the fields it needs, so that it does not depend on the CLI target.
struct ControllerContext: Sendable {
    var name: String
    var host: String
    var port: Int
    var isIPv6: Bool
    var caPEM: String
    var token: String

    /// `HOST:PORT` as the config file spells it.
    var server: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

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
        let (host, port, isIPv6) = try Self.parseServer(entry.server, whose: whose)
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
        self.init(name: entry.name, host: host, port: port, isIPv6: isIPv6, caPEM: pem, token: entry.token)
    }

    private init(name: String, host: String, port: Int, isIPv6: Bool, caPEM: String, token: String) {
        self.name = name
        self.host = host
        self.port = port
        self.isIPv6 = isIPv6
        self.caPEM = caPEM
        self.token = token
    }

    /// `HOST:PORT` or `[V6]:PORT`.
    private static func parseServer(_ text: String, whose: String) throws -> (String, Int, Bool) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw BenchError("server '\(text)' of \(whose) is not [HOST]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw BenchError("server '\(text)' of \(whose) is not HOST:PORT")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (1...65535).contains(port), !host.isEmpty else {
            throw BenchError("server '\(text)' of \(whose) is not HOST:PORT with a port in 1-65535")
        }
        let isIPv6 = host.contains(":")
        if host == "localhost" { host = "127.0.0.1" }
        return (String(host), port, isIPv6)
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
