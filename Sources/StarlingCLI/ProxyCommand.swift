import ArgumentParser
import ServiceLifecycle
import Foundation
import Logging
import StarlingCore
import StarlingAPI
import StarlingProxy
import SwiftProtobuf
import UnixSignals

/// `starling proxy`: the sidecar in the foreground (systemd-friendly). `starling run` starts the
/// same proxy in-process; this command is for operators wiring it up themselves.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy", abstract: "Run the sidecar proxy: inbound mTLS, outbound routing, admin.")

    @OptionGroup var connection: ControllerConnectionOptions

    @Option(name: [.short, .customLong("namespace")], help: "The workload's namespace (must match the token).")
    var namespace: String

    @Option(help: "The workload's service account (must match the token).")
    var serviceAccount: String = "default"

    @Option(help: "Trust domain of identities.")
    var trustDomain: String = "cluster.local"

    @Option(help: "Address the proxy listens on (the workload's address).")
    var listenAddress: String = "127.0.0.1"

    @Option var inboundPort: Int = 4143
    @Option var outboundPort: Int = 4140
    @Option var adminPort: Int = 4191

    @Option(help: "Host of the application (inbound traffic goes there).")
    var appHost: String = "127.0.0.1"

    @Option(name: .customLong("app-port"), help: "An application port (repeatable; the first is the default).")
    var appPorts: [Int] = []

    @Option(name: .customLong("outbound-tcp"), help: "Opaque TCP binding SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT (repeatable).")
    var outboundTCP: [String] = []

    @Option(help: "This cluster's name, sent with mesh requests so that linked clusters' gateways know the caller's cluster.")
    var clusterName: String?

    @Option(help: "Request metrics: on, or off (to measure what they cost; bench/proxy-pair.sh).")
    var metrics: MetricsSetting = .on

    @Option(help: "The registered workload this proxy fronts: its inbound policy is enforced (default: the namespace's default policy only; with --service, SERVICE-XXXXX).")
    var workload: String?

    @Option(
        help: ArgumentHelp(
            "Register the workload as an endpoint of this service (labelled app=SERVICE), keep it registered, and deregister it on SIGTERM.",
            discussion: "How a workload on a host of its own joins: its address is --listen-address, its port the first --app-port. Without it the proxy registers nothing (a workload `starling run` or an operator registers)."))
    var service: String?

    @Option(help: "Default inbound policy until the controller's arrives: all-unauthenticated, all-authenticated, cluster-authenticated, deny or audit.")
    var defaultInboundPolicy: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        for binding in outboundTCP { _ = try OpaqueBindingFlag.parse(binding) }
        guard !appPorts.isEmpty else { throw ValidationError("give at least one --app-port") }
        if let clusterName, let problem = ResourceNames.dns1123LabelProblem(clusterName) {
            throw ValidationError("--cluster-name \(clusterName): \(problem)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a log level") }
        if let defaultInboundPolicy, AccessPolicy.parse(defaultInboundPolicy) == nil {
            throw ValidationError("--default-inbound-policy \(defaultInboundPolicy): expected one of \(AccessPolicy.acceptedList)")
        }
        if let workload, let problem = ResourceNames.dns1123SubdomainProblem(workload) {
            throw ValidationError("--workload \(workload): \(problem)")
        }
        if let service, let problem = ResourceNames.dns1123LabelProblem(service) {
            throw ValidationError("--service \(service): \(problem)")
        }
        if service != nil, NetworkAddress.isWildcard(listenAddress) {
            throw ValidationError("--service registers the workload at --listen-address: give the workload's own address, not \(listenAddress)")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        Observability.bootstrapLogging(level: level)
        let metrics = Observability.bootstrapProxyMetrics(self.metrics)
        let controller = try connection.api()
        let logger = Logger(label: "starling.proxy")
        var configuration = ProxyConfiguration(
                controllerHost: controller.host, controllerPort: controller.port,
                controllerCertificatePEM: controller.certificatePEM, token: controller.token,
                identity: MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain),
                listenHost: listenAddress, inboundPort: inboundPort, outboundPort: outboundPort, adminPort: adminPort,
                appHost: appHost, appPorts: appPorts, opaqueBindings: try outboundTCP.map(OpaqueBindingFlag.parse),
                clusterName: clusterName)
        configuration.controllerReplicas = controller.replicas
        let name = workload ?? service.map { "\($0)-\(String(UUID().uuidString.lowercased().prefix(5)))" }
        configuration.workloadName = name
        configuration.defaultInboundPolicy = defaultInboundPolicy.flatMap(AccessPolicy.parse)
        if let service {
            // What Registration will register: the Servers that select it apply from the start.
            configuration.workloadLabels = ["app": service]
            configuration.workloadPorts = Registration.ports(inboundPort: inboundPort, appPort: appPorts.first)
        }
        let proxy = Proxy(configuration: configuration, logger: logger, metrics: metrics)
        // The registration speaks with the join token, to every replica the proxy knows.
        let registration = service.flatMap { service in
            name.map { name in
                ProxyRegistration(
                    context: ResolvedContext(
                        name: "proxy", clusterName: clusterName ?? "", serverHost: controller.host, serverPort: controller.port, adminServer: nil,
                        caPEM: controller.certificatePEM, token: controller.token, configPath: "", replicas: controller.replicas),
                    namespace: namespace, name: name, service: service, address: listenAddress, inboundPort: inboundPort,
                    appPort: appPorts.first, adminPort: adminPort, defaultInboundPolicy: defaultInboundPolicy)
            }
        }
        // SIGTERM and SIGINT shut it down gracefully (SidecarRuntime): the workload is
        // deregistered first, then /ready says so and the listeners drain, then the rest stops.
        // Its error, if any, is the command's.
        let serving = ServingWorkload(proxy: proxy, registration: registration, logger: logger)
        try await proxy.run(
            gracefulShutdownSignals: [.sigterm, .sigint],
            alongside: [
                .init(service: serving, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore, serviceName: "registration")
            ])
    }
}

/// What `starling proxy` does once its listeners serve, as a service of the proxy's group: drops
/// the start-up pages, then (with `--service`) keeps the workload registered until the graceful
/// shutdown, and deregisters it. It runs after the listeners in the group, so it stops first:
/// callers stop picking the workload before its listeners drain. Cancelled instead (the proxy
/// failed), it deregisters as well.
struct ServingWorkload: Service {
    var proxy: Proxy
    var registration: ProxyRegistration?
    var logger: Logger

    func run() async throws {
        let (proxy, registration, logger) = (proxy, registration, logger)
        let registered = await cancelWhenGracefulShutdown { () -> Bool in
            guard (try? await proxy.waitUntilReady(timeout: .seconds(300))) != nil else { return false }
            StartupPages.release(logger: logger)
            guard let registration else { return false }
            await registration.keepRegistered(logger: logger, certificate: { proxy.certificateReport })
            return true
        }
        if registered { await registration?.deregister(logger: logger) }
    }
}

/// `starling proxy --service`: the workload registered with the proxy's join token and kept
/// registered (``Registration``) until SIGTERM or SIGINT, which deregisters it before the
/// listeners drain (``ServingWorkload``), so callers stop picking it first.
struct ProxyRegistration: Sendable {
    var context: ResolvedContext
    var namespace: String
    var name: String
    var service: String
    var address: String
    var inboundPort: Int
    var appPort: Int?
    var adminPort: Int
    var defaultInboundPolicy: String?

    /// Registers the workload and keeps it registered until cancelled.
    func keepRegistered(logger: Logger, certificate: @escaping @Sendable () -> Proxy.CertificateReport?) async {
        try? await Registration.keepRegistered(
            context, name: name, address: address, inboundPort: inboundPort, appPort: appPort, adminPort: adminPort,
            labels: ["app": service], defaultInboundPolicy: defaultInboundPolicy, logger: logger,
            certificate: certificate)
    }

    /// Deregisters the workload (``Registration/deregister(_:namespace:name:logger:)``).
    func deregister(logger: Logger) async {
        if await Registration.deregister(context, namespace: namespace, name: name, logger: logger) {
            logger.notice("stopping: the workload is deregistered", metadata: ["workload": "\(namespace)/\(name)"])
        }
    }
}
