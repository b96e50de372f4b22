import ArgumentParser
import Foundation
import GRPCCore
import Logging
import StarlingAPI
import SwiftProtobuf
import StarlingCore
import StarlingProxy

/// `starling run -n NS [--service SVC --port P] [--service-account SA] -- CMD...`: universal mode's
/// "inject". Gets a join token, starts the proxy (in this process), starts CMD with
/// `http_proxy` pointing at the outbound listener, registers the workload once CMD listens on
/// its port (or, when it has not within 30 s, as a client only until it does), keeps it alive
/// with heartbeats, forwards signals, deregisters on exit and exits with CMD's status. A
/// SIGTERM to a workload that serves deregisters it first and reaches CMD
/// `--shutdown-delay` later when that is set (``RunShutdown``). Without
/// `--port` the command is a client only (a batch job, a curl): it is registered as one at once
/// and the run ends as soon as the command does.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command as a meshed workload: proxy, registration, and the app.")

    @OptionGroup var context: ContextOptions

    @Option(name: [.short, .customLong("namespace")], help: "The workload's namespace.")
    var namespace: String

    @Option(help: "The service this workload serves (created if missing, selecting app=SERVICE; needs --port).")
    var service: String?

    @Option(help: "The application's port (none: the command only calls out).")
    var port: Int?

    @Option(help: "The workload's service account.")
    var serviceAccount: String = "default"

    @Option(help: "The workload's address (default: a free address in the cluster's loopback range).")
    var address: String?

    @Option(help: "The service port's app protocol (http, or opaque for databases).")
    var appProtocol: String?

    @Option(name: .customLong("outbound-tcp"), help: "Opaque TCP binding SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT (repeatable).")
    var outboundTCP: [String] = []

    @Option(help: "Request metrics: on, or off (to measure what they cost; bench/proxy-pair.sh).")
    var metrics: MetricsSetting = .on

    @Option(help: "Seconds between deregistering the workload on SIGTERM and passing the signal to the command, so that callers stop routing to it first (as a Kubernetes preStop sleep; default 0: at once; SIGINT always goes at once). Whatever stops starling must wait longer than this before SIGKILL, or the command is left running.")
    var shutdownDelay: Double = 0

    @Option(help: "Log level of the proxy.")
    var logLevel: String = "notice"

    @Option(help: "The workload's own default inbound policy, for calls no Server covers: all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit (default: its namespace's, else the cluster's).")
    var defaultInboundPolicy: String?

    @Argument(parsing: .postTerminator, help: "The command to run (after --).")
    var command: [String]

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command to run after --") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port \(port) is not a port") }
        if service != nil, port == nil {
            throw ValidationError("--service needs --port: a service routes to the port the command listens on (omit both for a command that only calls out)")
        }
        if port != nil, service == nil {
            throw ValidationError("--port needs --service: name the service that routes to it")
        }
        for binding in outboundTCP { _ = try OpaqueBindingFlag.parse(binding) }
        guard (0...300).contains(shutdownDelay) else {
            throw ValidationError("--shutdown-delay \(shutdownDelay) is not between 0 and 300 seconds")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a log level") }
        if let defaultInboundPolicy, AccessPolicy.parse(defaultInboundPolicy) == nil {
            throw ValidationError("--default-inbound-policy \(defaultInboundPolicy): expected one of \(AccessPolicy.acceptedList)")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        Observability.bootstrapLogging(level: level)
        let metrics = Observability.bootstrapProxyMetrics(self.metrics)
        let logger = Logger(label: "starling.run")
        let resolved = try context.resolve()
        let proxyPorts = (inbound: 4143, outbound: 4140, admin: 4191)
        let claims = (StarlingPaths.home(environment: ProcessInfo.processInfo.environment) as NSString).appendingPathComponent("workloads")
        let workloadAddress = try address ?? WorkloadAddress.allocate(
            controllerHost: resolved.serverHost, ports: [proxyPorts.inbound, proxyPorts.outbound, proxyPorts.admin] + (port.map { [$0] } ?? []),
            claims: claims)
        defer { if address == nil { WorkloadAddress.release(workloadAddress, in: claims) } }
        let (namespace, service, port, serviceAccount, appProtocol) = (self.namespace, self.service, self.port, self.serviceAccount, self.appProtocol)

        // Token and service, with the admin credential.
        let token = try await ControllerClient.with(resolved) { client in
            var request = Starling_V1_CreateTokenRequest()
            request.namespace = namespace
            request.serviceAccount = serviceAccount
            request.ttlSeconds = 7 * 86400
            // Bound to the service it serves (a client only: the service its labels name), so
            // the token cannot register a workload another service would route to.
            request.service = service ?? serviceAccount
            let token = try await client.mesh.createToken(request).token
            if let service, let port {
                try await Self.ensureService(client, namespace: namespace, service: service, port: port, appProtocol: appProtocol)
            }
            return token
        }
        var registrationContext = resolved
        registrationContext.token = token
        let workloadContext = registrationContext
        let trustDomain = try await ControllerClient.with(resolved) { client in
            try await client.resources.get(.with { $0.kind = "MeshConfig"; $0.name = "mesh" })
        }.resourceJson
        let domain = (try? MeshConfigSpec(ResourceDecoder.decodeStored(trustDomain)).trustDomain) ?? "cluster.local"

        var proxyConfiguration = ProxyConfiguration(
                controllerHost: resolved.serverHost, controllerPort: resolved.serverPort,
                controllerCertificatePEM: resolved.caPEM, token: token,
                identity: MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: domain),
                listenHost: workloadAddress, inboundPort: proxyPorts.inbound, outboundPort: proxyPorts.outbound,
                adminPort: proxyPorts.admin, appHost: workloadAddress, appPorts: port.map { [$0] } ?? [],
                opaqueBindings: try outboundTCP.map(OpaqueBindingFlag.parse), clusterName: resolved.clusterName)
        proxyConfiguration.controllerReplicas = resolved.replicas
        // A client-only command is named, and labelled, after its service account.
        let app = service ?? serviceAccount
        let name = "\(app)-\(String(UUID().uuidString.lowercased().prefix(5)))"
        proxyConfiguration.workloadName = name
        // What Registration will register: the Servers that select it apply from the start.
        proxyConfiguration.workloadLabels = ["app": app]
        proxyConfiguration.workloadPorts = Registration.ports(inboundPort: proxyPorts.inbound, appPort: port)
        proxyConfiguration.defaultInboundPolicy = defaultInboundPolicy.flatMap(AccessPolicy.parse)
        let proxy = Proxy(configuration: proxyConfiguration, logger: Logger(label: "starling.proxy"), metrics: metrics)
        let proxyURL = "http://\(workloadAddress):\(proxyPorts.outbound)"
        var environment = ProcessInfo.processInfo.environment
        environment["http_proxy"] = proxyURL
        environment["HTTP_PROXY"] = proxyURL
        environment["no_proxy"] = "localhost,127.0.0.1"
        environment["STARLING_WORKLOAD_ADDRESS"] = workloadAddress
        environment["STARLING_NAMESPACE"] = namespace
        if let service { environment["STARLING_SERVICE"] = service }
        environment["STARLING_CLUSTER"] = resolved.clusterName
        if let port { environment["PORT"] = "\(port)" }
        let command = self.command
        let defaultInboundPolicy = self.defaultInboundPolicy

        let status: Int32 = try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                do { try await proxy.run() } catch where Task.isCancelled {}
                return nil
            }
            try await proxy.waitUntilReady(timeout: .seconds(30))
            // A client-only command is not routed to: its signal goes through at once.
            let shutdown = RunShutdown(delay: port == nil ? .zero : .milliseconds(Int(shutdownDelay * 1000)))
            let child = try ChildProcess.start(command, environment: environment, onSignal: shutdown.handle)
            logger.notice("workload started", metadata: ["workload": "\(namespace)/\(name)", "address": "\(workloadAddress)", "pid": "\(child.pid)"])
            StartupPages.release(logger: logger)
            @Sendable func deregister() async -> Bool {
                await Registration.deregister(workloadContext, namespace: namespace, name: name, logger: logger)
            }
            @Sendable func register() async {
                func keepRegistered(appPort: Int?) async {
                    try? await Registration.keepRegistered(
                        workloadContext, name: name, address: workloadAddress, inboundPort: proxyPorts.inbound,
                        appPort: appPort, adminPort: proxyPorts.admin, labels: ["app": app],
                        defaultInboundPolicy: defaultInboundPolicy, logger: logger,
                        certificate: { proxy.certificateReport })
                }
                guard let port else {
                    await keepRegistered(appPort: nil)
                    return
                }
                if await WorkloadAddress.waitUntilListening(host: workloadAddress, port: port, timeout: .seconds(30)) {
                    await keepRegistered(appPort: port)
                    return
                }
                // An application that does not listen (yet) is registered as a client only, so
                // that Prometheus scrapes its proxy and `viz tap` sees its calls; once it listens
                // it is registered again with its port, and traffic is routed to it.
                logger.notice("the application does not listen on \(workloadAddress):\(port) yet; registering it as a client only")
                let listening = await withTaskGroup(of: Bool.self) { registration in
                    registration.addTask {
                        await keepRegistered(appPort: nil)
                        return false
                    }
                    registration.addTask {
                        await WorkloadAddress.waitUntilListening(
                            host: workloadAddress, port: port, timeout: .seconds(365 * 86400), interval: .seconds(1))
                    }
                    let first = await registration.next() ?? false
                    registration.cancelAll()
                    return first
                }
                if listening { await keepRegistered(appPort: port) }
            }
            group.addTask {
                // Registered until a signal asks the workload to stop (or the command exits).
                let stopping = await withTaskGroup(of: Bool.self) { phase in
                    phase.addTask {
                        await register()
                        return false
                    }
                    phase.addTask {
                        for await _ in shutdown.requests { return true }
                        return false
                    }
                    var stopping = false
                    while let ended = await phase.next() {
                        if ended { stopping = true; break }
                        if Task.isCancelled { break }
                    }
                    phase.cancelAll()
                    return stopping
                }
                guard stopping else { return nil }
                if await deregister() {
                    logger.notice(
                        "stopping: the workload is deregistered; the command gets the signal after the shutdown delay",
                        metadata: ["workload": "\(namespace)/\(name)", "delay": "\(shutdown.delay)"])
                }
                try? await Task.sleep(for: shutdown.delay)
                shutdown.forwardHeld()
                return nil
            }
            let exit = await child.waitForExit()
            _ = await deregister()
            group.cancelAll()
            return exit
        } ?? 0
        throw ExitCode(status)
    }

    static func ensureService(_ client: ControllerClient, namespace: String, service: String, port: Int, appProtocol: String?) async throws {
        do {
            _ = try await client.resources.get(.with { $0.kind = "Service"; $0.namespace = namespace; $0.name = service })
            return
        } catch let error as RPCError where error.code == .notFound {}
        let spec = ServiceSpec(ports: [ServicePort(name: "http", port: port, appProtocol: appProtocol)])
        let resource = Resource(name: service, namespace: namespace, spec: spec)
        _ = try await client.resources.apply(.with {
            $0.resourcesJson = [ResourceEncoder.compactJSON(resource)]
            $0.source = "starling run"
        })
    }
}

/// `--outbound-tcp SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT`, parsed by the proxy's own flag parser.
enum OpaqueBindingFlag {
    static func parse(_ text: String) throws(ValidationError) -> OutboundProxy.OpaqueBinding {
        guard let binding = OutboundProxy.OpaqueBinding(flag: text) else {
            throw ValidationError("--outbound-tcp \"\(text)\" is not SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT (e.g. postgres.db:5432=127.0.0.1:15432)")
        }
        return binding
    }
}
