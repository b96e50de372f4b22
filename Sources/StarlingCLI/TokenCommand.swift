import ArgumentParser
import StarlingAPI
import StarlingCore

/// `starling token create --namespace NS --service-account SA [--service SVC] [--ttl 24h]`: a join token.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Join tokens for workloads.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Print a join token that lets a workload get a certificate for NS/SA and register.")

        @OptionGroup var context: ContextOptions

        @Option(name: [.short, .customLong("namespace")], help: "The workload's namespace.")
        var namespace: String

        @Option(help: "The workload's service account.")
        var serviceAccount: String = "default"

        @Option(help: "How long the token is valid, e.g. 1h, 24h (max 8760h).")
        var ttl: String = "24h"

        @Option(help: "Bind the token to this service of the namespace: its holder may register only workloads that no other service selects.")
        var service: String?

        func validate() throws {
            do { _ = try GoDuration.parse(ttl) } catch { throw ValidationError("--ttl: \(error.message)") }
        }

        func run() async throws {
            let seconds = try GoDuration.seconds(ttl)
            let resolved = try context.resolve()
            let (namespace, serviceAccount, service) = (self.namespace, self.serviceAccount, self.service)
            let token = try await ControllerClient.with(resolved) { client in
                var request = Starling_V1_CreateTokenRequest()
                request.namespace = namespace
                request.serviceAccount = serviceAccount
                request.ttlSeconds = Int64(seconds.rounded(.up))
                request.service = service ?? ""
                return try await client.mesh.createToken(request).token
            }
            print(token)
        }
    }
}
