public import Foundation
public import StarlingStore

/// Everything `starling controller` is started with. Read once by the command; libraries never
/// read the environment (STYLE.md §6).
public struct ControllerConfiguration: Sendable {
    /// The cluster's name, e.g. `workload1`.
    public var clusterName: String
    /// Where the store, the admin credential, the token key and the API certificate live.
    public var dataDirectory: String
    /// The gRPC API's address (TLS, bearer tokens). Port 0 picks a free port.
    public var apiHost: String
    public var apiPort: Int
    /// The admin HTTP server: `/ready`, `/live`, `/metrics`.
    public var adminHost: String
    public var adminPort: Int
    /// How long a registered workload lives without a heartbeat.
    public var workloadLease: Duration
    /// How often workloads are told to send heartbeats.
    public var heartbeatInterval: Duration
    /// The PostgreSQL database shared by the cluster's replicas; nil: SQLite in `dataDirectory`.
    public var postgres: PostgresStoreURL?
    /// The key that seals Secrets in the store; nil: `secrets.key` in the data directory, created
    /// when missing. Every replica of a cluster needs the same key.
    public var secretsKeyFile: String?
    /// Names (addresses, DNS names) the API certificate must carry besides `apiHost`: every other
    /// replica's, so that replicas share one certificate that clients pin.
    public var apiCertificateNames: [String] = []
    /// How long to keep trying a store that cannot be reached at start.
    public var storeStartupWait: Duration = .seconds(60)
    /// How many workload certificates one identity may get (per replica).
    public var certifyRateLimit: CertifyRateLimit = .standard
    /// The controller serves the multicluster gateway in its own process (`--gateway hosted`),
    /// so the gateway's series come with its own metrics; false when `starling gateway`
    /// processes do (`--gateway external`), which Prometheus then scrapes on their probe ports.
    public var gatewayHosted = true

    public init(
        clusterName: String,
        dataDirectory: String,
        apiHost: String = "127.0.0.1",
        apiPort: Int = 8086,
        adminHost: String = "127.0.0.1",
        adminPort: Int = 9990,
        workloadLease: Duration = .seconds(15),
        heartbeatInterval: Duration = .seconds(3),
        postgres: PostgresStoreURL? = nil
    ) {
        self.postgres = postgres
        self.clusterName = clusterName
        self.dataDirectory = dataDirectory
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.workloadLease = workloadLease
        self.heartbeatInterval = heartbeatInterval
    }

    var storePath: String { (dataDirectory as NSString).appendingPathComponent("store.sqlite") }
    var secretsKeyPath: String { secretsKeyFile ?? (dataDirectory as NSString).appendingPathComponent("secrets.key") }
}
