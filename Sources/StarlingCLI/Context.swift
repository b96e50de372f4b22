#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import ArgumentParser
public import StarlingCore
import Foundation

/// The environment variables and paths the CLI reads to find its config and local clusters.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `STARLING_CONFIG` | path of the config file (like `KUBECONFIG`) | `$STARLING_HOME/config` |
/// | `STARLING_HOME` | where the config and local clusters live | `~/.starling` |
public enum StarlingPaths {
    /// Environment variable naming the config file.
    public static let configVariable = "STARLING_CONFIG"
    /// Environment variable naming Starling's home directory.
    public static let homeVariable = "STARLING_HOME"

    /// `$STARLING_HOME`, else `~/.starling`.
    public static func home(environment: [String: String]) -> String {
        if let home = environment[homeVariable], !home.isEmpty {
            return expandTilde(home, environment: environment)
        }
        return userHome(environment: environment) + "/.starling"
    }

    /// The config file: `--config`, else `$STARLING_CONFIG`, else `$STARLING_HOME/config`.
    public static func configPath(flag: String?, environment: [String: String]) -> String {
        if let flag, !flag.isEmpty {
            return expandTilde(flag, environment: environment)
        }
        if let path = environment[configVariable], !path.isEmpty {
            return expandTilde(path, environment: environment)
        }
        return home(environment: environment) + "/config"
    }

    /// `~` and `~/…` expanded against `$HOME` (shells leave `~` alone inside quotes and in
    /// `VAR=~/x` forms that are not assignments).
    static func expandTilde(_ path: String, environment: [String: String]) -> String {
        if path == "~" { return userHome(environment: environment) }
        if path.hasPrefix("~/") { return userHome(environment: environment) + path.dropFirst() }
        return path
    }

    /// `$HOME`, else the password database entry of the current user, else `/`.
    static func userHome(environment: [String: String]) -> String {
        if let home = environment["HOME"], !home.isEmpty {
            return home.hasSuffix("/") && home.count > 1 ? String(home.dropLast()) : home
        }
        if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir {
            return String(cString: directory)
        }
        return "/"
    }
}

/// A context chosen from a config file, with its fields parsed and checked.
public struct ResolvedContext: Sendable, Equatable {
    /// The context's name.
    public var name: String
    /// The cluster name the controller serves.
    public var clusterName: String
    /// Host of the controller's gRPC API (no brackets for IPv6).
    public var serverHost: String
    /// Port of the controller's gRPC API.
    public var serverPort: Int
    /// The controller's admin HTTP endpoint `HOST:PORT`, when the context has one.
    public var adminServer: String?
    /// PEM of the controller's API certificate, to pin as the only trusted root.
    public var caPEM: String
    /// The admin bearer token.
    public var token: String
    /// The config file the context came from.
    public var configPath: String
    /// Every replica's API (`server: A:8086,B:8086,C:8086`), the first being `serverHost:serverPort`.
    /// Clients connect to whichever answers and move to another when it goes away.
    public var replicas: [HostPort] = []

    public init(
        name: String,
        clusterName: String,
        serverHost: String,
        serverPort: Int,
        adminServer: String?,
        caPEM: String,
        token: String,
        configPath: String,
        replicas: [HostPort]? = nil
    ) {
        self.name = name
        self.clusterName = clusterName
        self.serverHost = serverHost
        self.serverPort = serverPort
        self.adminServer = adminServer
        self.caPEM = caPEM
        self.token = token
        self.configPath = configPath
        self.replicas = replicas ?? [HostPort(host: serverHost, port: serverPort)]
    }

    /// `HOST:PORT` of the API, with brackets around IPv6 hosts.
    public var server: String {
        serverHost.contains(":") ? "[\(serverHost)]:\(serverPort)" : "\(serverHost):\(serverPort)"
    }
}

/// `--context NAME` and `--config FILE`, shared by every command that talks to a controller.
///
/// Use it as `@OptionGroup var contextOptions: ContextOptions` and call ``resolve()`` in `run()`.
public struct ContextOptions: ParsableArguments {
    @Option(name: .long, help: "The context to use (default: the config's current-context).")
    public var context: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The config file to read (default: $STARLING_CONFIG, else $STARLING_HOME/config, else ~/.starling/config).",
            valueName: "file"
        )
    )
    public var config: String?

    public init() {}

    public func validate() throws {
        if let context, context.isEmpty {
            throw ValidationError("--context must not be empty")
        }
        if let config, config.isEmpty {
            throw ValidationError("--config must not be empty")
        }
    }

    /// Reads the config file and picks the context, reading `STARLING_CONFIG` and `STARLING_HOME`
    /// from the process environment.
    public func resolve() throws -> ResolvedContext {
        try resolve(environment: ProcessInfo.processInfo.environment)
    }

    /// Like ``resolve()`` with an explicit environment (for tests and embedding).
    public func resolve(environment: [String: String]) throws -> ResolvedContext {
        let path = StarlingPaths.configPath(flag: config, environment: environment)
        let file = try loadContextFile(path: path)
        return try Self.resolve(file, path: path, requested: context)
    }

    /// Picks a context from `file`: `requested`, else the current context, else the only context.
    static func resolve(_ file: ContextFile, path: String, requested: String?) throws(CLIError) -> ResolvedContext {
        let chosen: ContextFile.Context
        if let requested {
            guard let match = file.context(named: requested) else {
                throw CLIError(
                    "context \(requested) not found in \(path) (have: \(file.namesForMessages))",
                    hint: "pick one of those with --context, or pass the right --config"
                )
            }
            chosen = match
        } else if let current = file.currentContext {
            guard let match = file.context(named: current) else {
                throw CLIError(
                    "current-context \(current) not found in \(path) (have: \(file.namesForMessages))",
                    hint: "pass --context NAME, or fix current-context in \(path)"
                )
            }
            chosen = match
        } else if file.contexts.count == 1 {
            chosen = file.contexts[0]
        } else if file.contexts.isEmpty {
            throw CLIError(
                "\(path) has no contexts",
                hint: "create a cluster with `starling cluster create NAME` or pass --config"
            )
        } else {
            throw CLIError(
                "\(path) has no current-context and \(file.contexts.count) contexts (have: \(file.namesForMessages))",
                hint: "pass --context NAME, or set current-context in \(path)"
            )
        }
        return try resolve(chosen, path: path)
    }

    /// Parses and checks the fields of one context.
    static func resolve(_ context: ContextFile.Context, path: String) throws(CLIError) -> ResolvedContext {
        let whose = "context \(context.name) in \(path)"
        var replicas: [HostPort] = []
        for server in context.server.split(separator: ",") {
            replicas.append(try ContextAddress.parse(server.trimmingCharacters(in: .whitespaces), field: "server of \(whose)"))
        }
        guard let first = replicas.first else {
            throw CLIError("server of \(whose) is empty", hint: "it is HOST:PORT, or HOST:PORT,HOST:PORT,… for replicas")
        }
        let (host, port) = (first.host, first.port)
        if let admin = context.adminServer {
            _ = try ContextAddress.parse(admin, field: "admin-server of \(whose)")
        }
        let caPEM: String
        let trimmed = context.certificateAuthorityData.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN") {
            caPEM = trimmed + "\n"
        } else if let decoded = Data(base64Encoded: trimmed, options: .ignoreUnknownCharacters), !decoded.isEmpty,
            let text = String(data: decoded, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----")
        {
            caPEM = text
        } else if trimmed.isEmpty {
            throw CLIError(
                "certificate-authority-data of \(whose) is empty",
                hint: "re-export the credentials with `starling cluster credentials \(context.clusterName) --export-file FILE`"
            )
        } else {
            throw CLIError(
                "certificate-authority-data of \(whose) is not base64 of a PEM certificate",
                hint: "it must be the output of `base64 -w0 api.crt`"
            )
        }
        guard !context.token.isEmpty else {
            throw CLIError("token of \(whose) is empty")
        }
        return ResolvedContext(
            name: context.name,
            clusterName: context.clusterName.isEmpty ? context.name : context.clusterName,
            serverHost: host,
            serverPort: port,
            adminServer: context.adminServer,
            caPEM: caPEM,
            token: context.token,
            configPath: path,
            replicas: replicas
        )
    }
}

/// `HOST:PORT` and `[V6]:PORT` in contexts and cluster records.
enum ContextAddress {
    static func parse(_ text: String, field: String) throws(CLIError) -> HostPort {
        do {
            return try HostPort.parse(text, field: field)
        } catch {
            throw CLIError(error.message)
        }
    }
}
