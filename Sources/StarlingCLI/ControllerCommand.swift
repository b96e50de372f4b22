import ArgumentParser
import ServiceLifecycle
import StarlingObservability
import UnixSignals
import Foundation
import Logging
import StarlingControlPlane
import StarlingCore
import StarlingStore

/// `starling controller`: the control plane of one cluster, in the foreground (systemd-friendly).
/// Stops gracefully on SIGTERM or SIGINT.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run the control plane of one cluster (API, store, identity, destination) in the foreground.")

    @Option(help: "The cluster's name.")
    var clusterName: String

    @Option(help: "Directory for the store and the controller's credentials.")
    var dataDir: String

    @Option(help: "gRPC API address HOST:PORT.")
    var apiAddress: String = "127.0.0.1:8086"

    @Option(help: "Admin HTTP address HOST:PORT (/ready, /live, /metrics).")
    var adminAddress: String = "127.0.0.1:9990"

    @Option(
        help: ArgumentHelp(
            "Where resources live: sqlite (a file in --data-dir) or postgres://USER@HOST:PORT/DB, a database the cluster's replicas share.",
            discussion: "The password comes from PGPASSWORD or the URL; ?sslmode=require|verify-full&sslrootcert=FILE protects the connection."))
    var store: String = "sqlite"

    @Option(
        help: ArgumentHelp(
            "The key (32 bytes, base64, mode 0600) that seals Secrets in the store (default: DATA_DIR/secrets.key, created when missing).",
            discussion: "Every replica of a cluster needs the same key; a replica with another key refuses to start."))
    var secretsKeyFile: String?

    @Option(
        name: .customLong("api-certificate-name"),
        help: ArgumentHelp(
            "Another name (address or DNS name) the API certificate must carry; repeat it for every other replica.",
            discussion: "Replicas share one certificate (copied with the data directory), which clients pin as their only root."))
    var apiCertificateNames: [String] = []

    @Option(help: "Workload certificates one identity may get per second once its burst is spent (on each replica).")
    var certifyRate: Double = CertifyRateLimit.standard.perSecond

    @Option(help: "Workload certificates one identity may get at once (a whole deployment starting).")
    var certifyBurst: Int = Int(CertifyRateLimit.standard.burst)

    @Option(
        help: ArgumentHelp(
            "Who serves the multicluster gateway: hosted (this controller, while multicluster is installed) or external (a `starling gateway` process).",
            valueName: "hosted|external"))
    var gateway: GatewayHosting = .hosted

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    /// The PostgreSQL database of --store, nil for SQLite.
    func postgresURL() throws(ValidationError) -> PostgresStoreURL? { try Self.postgresURL(store) }

    /// A `--store` value (`sqlite` or a PostgreSQL URL): the database, nil for SQLite.
    static func postgresURL(_ store: String) throws(ValidationError) -> PostgresStoreURL? {
        guard store != "sqlite" else { return nil }
        do {
            return try PostgresStoreURL(store)
        } catch {
            throw ValidationError("--store: \(error.message)")
        }
    }

    func validate() throws {
        _ = try postgresURL()
        _ = try HostPort.parse(apiAddress, flag: "--api-address")
        _ = try HostPort.parse(adminAddress, flag: "--admin-address")
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error")
        }
        guard certifyRate > 0, certifyRate.isFinite else { throw ValidationError("--certify-rate \(certifyRate) must be above 0") }
        guard certifyBurst >= 1 else { throw ValidationError("--certify-burst \(certifyBurst) must be at least 1") }
    }

    func run() async throws {
        let api = try HostPort.parse(apiAddress, flag: "--api-address")
        let admin = try HostPort.parse(adminAddress, flag: "--admin-address")
        let level = Logger.Level(rawValue: logLevel) ?? .info
        Observability.bootstrapLogging(level: level)
        let metrics = Observability.bootstrapPrometheus()
        var logger = Logger(label: "starling.controller")
        logger[metadataKey: "cluster"] = "\(clusterName)"

        var configuration = ControllerConfiguration(
            clusterName: clusterName, dataDirectory: dataDir, apiHost: api.host, apiPort: api.port,
            adminHost: admin.host, adminPort: admin.port, postgres: try postgresURL())
        configuration.secretsKeyFile = secretsKeyFile
        configuration.apiCertificateNames = apiCertificateNames
        configuration.certifyRateLimit = CertifyRateLimit(perSecond: certifyRate, burst: Double(certifyBurst))
        configuration.gatewayHosted = gateway == .hosted
        let controller = Controller(
            configuration: configuration,
            logger: logger,
            metrics: metrics)
        let (clusterName, dataDir, controllerLogger) = (self.clusterName, self.dataDir, logger)
        let (listening, announce) = AsyncStream<Controller.Listening>.makeStream()
        // Set once the controller stops: the gateway's supervisor then expects its API to go.
        let controllerStopping = OnceFlag()
        let controllerService = ServiceGroupConfiguration.ServiceConfiguration(
            service: StoppedOnShutdown(onShutdown: {
                _ = controllerStopping.take()
                controllerLogger.info("shutting down: the controller stops first")
            }) {
                // A controller that stops (or fails to start) ends the supervisor's wait.
                defer { announce.finish() }
                try await controller.run { announce.yield($0) }
            },
            serviceName: "controller")
        var services = [controllerService]
        if gateway == .hosted {
            // Once the API is up, the gateway runs whenever multicluster is installed. On SIGTERM
            // it keeps serving while the controller stops (the API's grace for open RPCs, 1 s),
            // and drains after it: linked clusters' callers have this host's gateway for as long
            // as possible, and lose it only from the drain to the restarted process listening.
            // The gateway needs no API to serve or drain; its streams to it just end.
            services.insert(
                .init(
                    service: StoppedOnShutdown(onShutdown: { controllerLogger.info("shutting down: the gateway drains") }) {
                        for await ports in listening {
                            let supervisor = GatewaySupervisor(
                                clusterName: clusterName, apiHost: api.host, apiPort: ports.apiPort, dataDirectory: dataDir,
                                logger: controllerLogger, metrics: metrics, controllerStopping: { controllerStopping.isTaken },
                                otherReplicas: ports.otherReplicas)
                            try await supervisor.run()
                            return
                        }
                    },
                    // Its wait ends without a value when the controller could not start: the
                    // controller's error is the one to report.
                    successTerminationBehavior: .ignore,
                    serviceName: "gateway-supervisor"),
                at: 0)
        }
        // SIGTERM and SIGINT shut down gracefully, in reverse order (the controller stops, then the
        // gateway drains); whatever still runs a minute later is cancelled.
        var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(60)
        try await ServiceGroup(configuration: group).run()
    }
}

extension HostPort {
    /// A `HOST:PORT` flag (port 0: any free port, for listen addresses).
    static func parse(_ text: String, flag: String) throws(ValidationError) -> HostPort {
        do {
            return try HostPort.parse(text, field: flag, allowingPortZero: true)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

/// `starling controller --gateway`: who serves the multicluster gateway.
enum GatewayHosting: String, ExpressibleByArgument, CaseIterable {
    case hosted, external
}
