#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Foundation
import StarlingCore
import Yams

/// What `$STARLING_HOME/clusters/NAME/cluster.yaml` records about a local cluster.
public struct ClusterRecord: Codable, Sendable, Equatable {
    /// The cluster's name, a DNS-1123 label.
    public var name: String
    /// The loopback range the cluster owns, `127.N.0.0/16`.
    public var addressRange: String
    /// The controller's gRPC API address, `127.N.0.1:8086`.
    public var apiAddress: String
    /// The controller's admin HTTP address, `127.N.0.1:9990`.
    public var adminAddress: String
    /// When the cluster was created.
    public var created: Date
    /// The controller's `--store` when it is not SQLite in the data directory: a PostgreSQL URL.
    /// The record file is 0600, as is every file that holds a credential.
    public var store: String?
    /// How many controller replicas share the store (nil: one). Replica K listens on `127.N.0.K`.
    public var replicas: Int?

    public init(
        name: String, addressRange: String, apiAddress: String, adminAddress: String, created: Date, store: String? = nil,
        replicas: Int? = nil
    ) {
        self.store = store
        self.replicas = replicas
        self.name = name
        self.addressRange = addressRange
        self.apiAddress = apiAddress
        self.adminAddress = adminAddress
        self.created = created
    }

    enum CodingKeys: String, CodingKey {
        case name
        case addressRange = "address-range"
        case apiAddress = "api-address"
        case adminAddress = "admin-address"
        case created
        case store
        case replicas
    }

    /// Replica K (1-based) of the controller: where it listens. Replica 1 is `apiAddress` and
    /// `adminAddress`; replica K uses the same ports on `127.N.0.K`.
    public struct Replica: Sendable, Equatable {
        public var index: Int
        public var apiAddress: String
        public var adminAddress: String
        public var host: String
    }

    public var replicaList: [Replica] {
        let api = HostPort(parsing: apiAddress)
        let admin = HostPort(parsing: adminAddress)
        guard let api, let admin else { return [Replica(index: 1, apiAddress: apiAddress, adminAddress: adminAddress, host: apiAddress)] }
        let prefix = api.host.split(separator: ".").dropLast().joined(separator: ".")
        return (1...max(1, replicas ?? 1)).map { k in
            let host = k == 1 ? api.host : "\(prefix).\(k)"
            return Replica(
                index: k, apiAddress: NetworkAddress.joinHostPort(host, api.port),
                adminAddress: NetworkAddress.joinHostPort(host, admin.port), host: host)
        }
    }
}

/// Whether a local cluster's controller runs.
public enum ClusterState: String, Sendable, Codable {
    case running
    case stopped
}

/// The local clusters under `$STARLING_HOME/clusters`: creating them (a controller started in the
/// background on the cluster's own loopback range), listing, deleting and exporting credentials.
///
/// Layout of one cluster:
///
/// ```
/// $STARLING_HOME/clusters/NAME/cluster.yaml     the ClusterRecord
/// $STARLING_HOME/clusters/NAME/controller.pid   the controller's pid
/// $STARLING_HOME/clusters/NAME/controller.log   its stdout and stderr
/// $STARLING_HOME/clusters/NAME/data/            its --data-dir (admin-token, api.crt, store)
/// $STARLING_HOME/clusters/NAME/viz/             the Prometheus `viz install` started (VizPrometheus)
/// ```
///
/// The registry takes its home directory explicitly and never reads the environment.
public struct ClusterRegistry: Sendable {
    /// `$STARLING_HOME`.
    public var home: String
    /// The program to run as `PROGRAM controller …`; nil means this executable (`/proc/self/exe`).
    public var controllerExecutable: String?
    /// How long `create` waits for the controller's `/ready`.
    public var readyTimeout: Duration
    /// How long `delete` waits after SIGTERM before sending SIGKILL.
    public var stopGracePeriod: Duration
    /// The controller's API port on its cluster's controller address.
    public var apiPort: Int
    /// The controller's admin HTTP port on its cluster's controller address.
    public var adminPort: Int

    public init(
        home: String,
        controllerExecutable: String? = nil,
        readyTimeout: Duration = .seconds(30),
        stopGracePeriod: Duration = .seconds(10),
        apiPort: Int = 8086,
        adminPort: Int = 9990
    ) {
        self.home = home
        self.controllerExecutable = controllerExecutable
        self.readyTimeout = readyTimeout
        self.stopGracePeriod = stopGracePeriod
        self.apiPort = apiPort
        self.adminPort = adminPort
    }

    /// `$STARLING_HOME/config`, where `create` adds each cluster's context.
    public var configPath: String { home + "/config" }
    /// `$STARLING_HOME/clusters`.
    public var clustersDirectory: String { home + "/clusters" }
    /// `$STARLING_HOME/clusters/NAME`.
    public func directory(of name: String) -> String { clustersDirectory + "/" + name }
    /// The controller's `--data-dir`.
    public func dataDirectory(of name: String) -> String { directory(of: name) + "/data" }
    /// The controller's log.
    public func logPath(of name: String) -> String { directory(of: name) + "/controller.log" }
    func recordPath(of name: String) -> String { directory(of: name) + "/cluster.yaml" }
    func pidPath(of name: String) -> String { directory(of: name) + "/controller.pid" }
    /// Replica K's directory: the cluster's own for replica 1, `replica-K/` below it for the others.
    func replicaDirectory(of name: String, _ k: Int) -> String { k == 1 ? directory(of: name) : directory(of: name) + "/replica-\(k)" }
    func dataDirectory(of name: String, replica k: Int) -> String { replicaDirectory(of: name, k) + "/data" }
    func logPath(of name: String, replica k: Int) -> String { replicaDirectory(of: name, k) + "/controller.log" }
    func pidPath(of name: String, replica k: Int) -> String { replicaDirectory(of: name, k) + "/controller.pid" }

    /// The files every replica shares (made by replica 1 on its first start): its API certificate
    /// names every replica, and the secrets key opens what the others sealed.
    static let sharedCredentialFiles = ["admin-token", "token-key", "api.crt", "api.key", "secrets.key"]

    // MARK: - Names

    /// Checks that `name` is a DNS-1123 label: 1–63 of `a-z`, `0-9`, `-`, starting and ending
    /// with a letter or digit.
    static func validate(name: String) throws(CLIError) {
        let allowed = name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        guard !name.isEmpty, name.utf8.count <= 63, allowed, name.first != "-", name.last != "-" else {
            throw CLIError(
                "invalid cluster name '\(name)': it must be a DNS-1123 label (1-63 characters of a-z, 0-9 and '-', "
                    + "starting and ending with a letter or digit), e.g. workload1"
            )
        }
    }

    // MARK: - Reading the registry

    /// Every readable cluster, sorted by name, and a note for each directory that is not a readable
    /// cluster (e.g. left by a crashed `create`).
    public func list() throws -> (clusters: [ClusterRecord], problems: [String]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: clustersDirectory)
        } catch CocoaError.fileReadNoSuchFile {
            return ([], [])
        } catch {
            if !FileManager.default.fileExists(atPath: clustersDirectory) { return ([], []) }
            throw CLIError("cannot list \(clustersDirectory): \(error.localizedDescription)")
        }
        var clusters: [ClusterRecord] = []
        var problems: [String] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory(of: name), isDirectory: &isDirectory),
                isDirectory.boolValue
            else { continue }
            do {
                clusters.append(try record(named: name))
            } catch {
                problems.append("\(directory(of: name)): \(error)")
            }
        }
        return (clusters, problems)
    }

    /// The names of every cluster directory, for "have: …" messages.
    func existingNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: clustersDirectory)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Reads `clusters/NAME/cluster.yaml`.
    public func record(named name: String) throws -> ClusterRecord {
        let path = recordPath(of: name)
        let bytes = try ContextFileIO.readRequired(path, what: "cluster record")
        do {
            return try YAMLDecoder().decode(ClusterRecord.self, from: String(decoding: bytes, as: UTF8.self))
        } catch {
            throw CLIError("\(path) is not a valid cluster record: \(ContextFileIO.describe(decodingError: error))")
        }
    }

    /// Whether the cluster's controller runs (a replica's pid file names a live `controller`
    /// process of this cluster), and the pid of the first replica that does.
    public func state(of name: String) -> (state: ClusterState, pid: Int32?) {
        let replicas = (try? record(named: name))?.replicaList.map(\.index) ?? [1]
        for k in replicas {
            if let pid = readPID(of: name, replica: k), ClusterProcess.isController(pid, clusterName: name) {
                return (.running, pid)
            }
        }
        return (.stopped, nil)
    }

    func readPID(of name: String, replica k: Int = 1) -> pid_t? {
        guard let bytes = try? ContextFileIO.readIfPresent(pidPath(of: name, replica: k)) else { return nil }
        return pid_t(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A "no cluster named NAME" error that lists the clusters there are.
    func unknownCluster(_ name: String) -> CLIError {
        let names = existingNames()
        return CLIError(
            "no cluster named \(name) in \(clustersDirectory) (have: \(names.isEmpty ? "none" : names.joined(separator: ", ")))",
            hint: names.isEmpty ? "create one with `starling cluster create NAME`" : "see `starling cluster list`"
        )
    }

    func requireExisting(_ name: String) throws(CLIError) {
        var isDirectory: ObjCBool = false
        guard (try? Self.validate(name: name)) != nil,
            FileManager.default.fileExists(atPath: directory(of: name), isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw unknownCluster(name)
        }
    }

    // MARK: - Address ranges

    /// The range for a new cluster: `requested` if no other cluster uses it, else an error naming
    /// the cluster that does; without a request, the lowest free `127.N.0.0/16`.
    static func allocateRange(
        requested: ClusterAddressRange?,
        existing: [ClusterRecord]
    ) throws(CLIError) -> ClusterAddressRange {
        var owners: [ClusterAddressRange: String] = [:]
        for record in existing {
            if let range = try? ClusterAddressRange(parsing: record.addressRange, source: "cluster \(record.name)") {
                owners[range] = record.name
            }
        }
        if let requested {
            if let owner = owners[requested] {
                throw CLIError(
                    "address range \(requested) is already used by cluster \(owner)",
                    hint: "pick another --address-range, or omit it to get the lowest free range"
                )
            }
            return requested
        }
        guard let free = ClusterAddressRange.lowestFree(excluding: Set(owners.keys)) else {
            throw CLIError(
                "every loopback range 127.1.0.0/16 … 127.255.0.0/16 is used by a local cluster",
                hint: "delete one with `starling cluster delete NAME`"
            )
        }
        return free
    }

    // MARK: - Create

    /// Validates the name, allocates the range and claims `clusters/NAME/` with its `cluster.yaml`,
    /// all under the registry lock so that concurrent creates cannot take the same name or range.
    func reserve(
        name: String, requestedRange: ClusterAddressRange?, store: String? = nil, replicas: Int = 1, now: Date = Date()
    ) throws -> ClusterRecord {
        try Self.validate(name: name)
        return try withLock {
            if FileManager.default.fileExists(atPath: directory(of: name)) {
                throw CLIError(
                    "cluster \(name) already exists (delete it first with `starling cluster delete \(name)`)"
                )
            }
            let range = try Self.allocateRange(requested: requestedRange, existing: try list().clusters)
            let record = ClusterRecord(
                name: name,
                addressRange: range.description,
                apiAddress: "\(range.controllerHost):\(apiPort)",
                adminAddress: "\(range.controllerHost):\(adminPort)",
                created: now,
                store: store,
                replicas: replicas > 1 ? replicas : nil
            )
            guard mkdir(directory(of: name), 0o700) == 0 else {
                throw CLIError("cannot create \(directory(of: name)): \(ContextFileIO.errorString(errno))")
            }
            do {
                try ContextFileIO.makeDirectory(dataDirectory(of: name), mode: 0o700)
                try ContextFileIO.writeAtomically(
                    Array(try YAMLEncoder().encode(record).utf8),
                    to: recordPath(of: name),
                    mode: 0o600
                )
            } catch {
                try? FileManager.default.removeItem(atPath: directory(of: name))
                throw error
            }
            return record
        }
    }

    /// The command line of replica `k` of `record`'s controller, without the program path. With
    /// several replicas, each names the others in its API certificate (replica 1 makes it; the
    /// others get copies).
    public func controllerArguments(for record: ClusterRecord, replica k: Int = 1) -> [String] {
        let replicas = record.replicaList
        let me = replicas.first(where: { $0.index == k }) ?? replicas[0]
        var arguments = [
            "controller",
            "--cluster-name", record.name,
            "--data-dir", dataDirectory(of: record.name, replica: me.index),
            "--api-address", me.apiAddress,
            "--admin-address", me.adminAddress,
        ] + (record.store.map { ["--store", $0] } ?? [])
        for other in replicas where other.index != me.index {
            arguments += ["--api-certificate-name", other.host]
        }
        return arguments
    }

    /// Creates cluster `name`: reserves its directory and range, starts its controller in the
    /// background, waits for `/ready`, and adds its context to `$STARLING_HOME/config` (current if
    /// there was no current context). On failure nothing is left behind.
    ///
    /// `progress` receives one line per step.
    public func create(
        name: String,
        requestedRange: ClusterAddressRange?,
        store: String? = nil,
        replicas: Int = 1,
        progress: (String) -> Void
    ) async throws -> ClusterRecord {
        let record = try reserve(name: name, requestedRange: requestedRange, store: store, replicas: replicas)
        var pids: [pid_t] = []
        do {
            for replica in record.replicaList {
                if replica.index > 1 { try copySharedCredentials(of: record.name, to: replica.index) }
                let pid = try launch(record, replica, progress: progress)
                pids.append(pid)
                try await waitUntilReady(record, replica, pid: pid, progress: progress)
            }
            let context = try context(for: record)
            try withLock {
                var file = try loadContextFileIfPresent(path: configPath) ?? ContextFile()
                file.upsert(context)
                if file.currentContext.map({ file.context(named: $0) == nil }) ?? true {
                    file.currentContext = context.name
                }
                try saveContextFile(file, path: configPath)
            }
            return record
        } catch {
            for pid in pids where ClusterProcess.isAlive(pid) {
                _ = await ClusterProcess.stop(pid, grace: stopGracePeriod)
            }
            try? FileManager.default.removeItem(atPath: directory(of: name))
            throw error
        }
    }

    /// Gives replica `k` the credentials replica 1 made, keeping them 0600.
    private func copySharedCredentials(of name: String, to k: Int) throws {
        let from = dataDirectory(of: name)
        let to = dataDirectory(of: name, replica: k)
        try ContextFileIO.makeDirectory(replicaDirectory(of: name, k), mode: 0o700)
        try ContextFileIO.makeDirectory(to, mode: 0o700)
        for file in Self.sharedCredentialFiles {
            let bytes = try ContextFileIO.readRequired(from + "/" + file, what: "replica 1's \(file)")
            try ContextFileIO.writeAtomically(Array(bytes), to: to + "/" + file, mode: 0o600)
        }
    }

    private func launch(_ record: ClusterRecord, _ replica: ClusterRecord.Replica, progress: (String) -> Void) throws -> pid_t {
        let admin = try ContextAddress.parse(replica.adminAddress, field: "admin address")
        if let status = ClusterProcess.httpStatus(host: admin.host, port: admin.port, path: "/ready", timeout: .milliseconds(500)) {
            throw CLIError(
                "something already answers on http://\(replica.adminAddress)/ready (HTTP \(status)) before cluster \(record.name)'s controller started",
                hint: "a controller from another STARLING_HOME may still run on \(record.addressRange); stop it, "
                    + "or pick another range with --address-range"
            )
        }
        let executable = try controllerExecutable ?? ClusterProcess.currentExecutable()
        let which = record.replicaList.count > 1 ? "replica \(replica.index) of the controller" : "controller"
        progress("starting \(which) for \(record.name) on \(replica.apiAddress) ...")
        let pid = try ClusterProcess.spawnDetached(
            executable: executable,
            arguments: controllerArguments(for: record, replica: replica.index),
            logPath: logPath(of: record.name, replica: replica.index)
        )
        try ContextFileIO.writeAtomically(Array("\(pid)\n".utf8), to: pidPath(of: record.name, replica: replica.index), mode: 0o644)
        return pid
    }

    private func waitUntilReady(
        _ record: ClusterRecord, _ replica: ClusterRecord.Replica, pid: pid_t, progress: (String) -> Void
    ) async throws {
        let admin = try ContextAddress.parse(replica.adminAddress, field: "admin address")
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: readyTimeout)
        var lastStatus: Int?
        var announced = false
        while true {
            if let ending = ClusterProcess.reapIfExited(pid) {
                throw failure(record, replica, "exited (\(ending)) before it was ready")
            }
            if !ClusterProcess.isAlive(pid) {
                throw failure(record, replica, "exited before it was ready")
            }
            lastStatus = ClusterProcess.httpStatus(host: admin.host, port: admin.port, path: "/ready", timeout: .seconds(1))
            if lastStatus == 200 { return }
            if clock.now >= deadline { break }
            if !announced, clock.now - start > .seconds(3) {
                progress("waiting for http://\(replica.adminAddress)/ready (up to \(readyTimeout)) ...")
                announced = true
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let answered = lastStatus.map { "answered HTTP \($0)" } ?? "did not answer"
        throw failure(record, replica, "was not ready after \(readyTimeout) (http://\(replica.adminAddress)/ready \(answered))")
    }

    /// A failure of a controller replica of `record`, with the tail of its log.
    private func failure(_ record: ClusterRecord, _ replica: ClusterRecord.Replica, _ what: String) -> CLIError {
        let lines = ClusterProcess.tail(of: logPath(of: record.name, replica: replica.index), lines: 20)
        let log = lines.isEmpty
            ? "controller.log is empty"
            : "last \(lines.count) lines of controller.log:\n" + lines.map { "  | " + $0 }.joined(separator: "\n")
        let program = controllerExecutable ?? "starling"
        return CLIError(
            "the controller of cluster \(record.name) \(what); \(log)",
            hint: "run it in the foreground to see why: \(([program] + controllerArguments(for: record, replica: replica.index)).joined(separator: " "))"
        )
    }

    // MARK: - Credentials

    /// The context for `record`, made from the files its controller wrote into its data directory
    /// (`admin-token`, `api.crt`).
    public func context(for record: ClusterRecord) throws -> ContextFile.Context {
        let data = dataDirectory(of: record.name)
        let tokenBytes = try ContextFileIO.readRequired(data + "/admin-token", what: "the controller's admin token")
        let token = String(decoding: tokenBytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw CLIError("the controller's admin token \(data)/admin-token is empty")
        }
        let certificate = try ContextFileIO.readRequired(data + "/api.crt", what: "the controller's API certificate")
        guard String(decoding: certificate, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            throw CLIError("the controller's API certificate \(data)/api.crt is not a PEM certificate")
        }
        return ContextFile.Context(
            name: record.name,
            clusterName: record.name,
            server: record.replicaList.map(\.apiAddress).joined(separator: ","),
            adminServer: record.adminAddress,
            certificateAuthorityData: Data(certificate).base64EncodedString(),
            token: token
        )
    }

    /// Writes a config file holding only cluster `name`'s context (and current-context set to it),
    /// mode `0600`, to `path`.
    public func exportCredentials(name: String, to path: String) throws {
        try requireExisting(name)
        let record = try record(named: name)
        let file = ContextFile(currentContext: name, contexts: [try context(for: record)])
        try saveContextFile(file, path: path)
    }

    // MARK: - Delete

    /// Stops cluster `name`'s controller (SIGTERM, then SIGKILL after the grace period; only if the
    /// pid is still that cluster's controller), removes its directory and its context in
    /// `$STARLING_HOME/config`.
    public func delete(name: String, progress: (String) -> Void) async throws {
        try requireExisting(name)
        let replicas = (try? record(named: name))?.replicaList.map(\.index) ?? [1]
        for k in replicas {
            guard let pid = readPID(of: name, replica: k), ClusterProcess.isAlive(pid) else { continue }
            if ClusterProcess.isController(pid, clusterName: name) {
                progress("stopping controller\(k > 1 ? " replica \(k)" : "") of \(name) (pid \(pid)) ...")
                guard await ClusterProcess.stop(pid, grace: stopGracePeriod) else {
                    throw CLIError(
                        "the controller of \(name) (pid \(pid)) is still running after SIGKILL; \(directory(of: name)) was kept",
                        hint: "check `ps -p \(pid)` and run `starling cluster delete \(name)` again"
                    )
                }
            } else {
                progress("pid \(pid) in \(pidPath(of: name, replica: k)) is not \(name)'s controller any more; not signalling it")
            }
        }
        let viz = VizPrometheus.Local(clusterDirectory: directory(of: name))
        if let pid = viz.runningPID {
            progress("stopping Prometheus of \(name) (pid \(pid)) ...")
            await viz.remove()
        }
        do {
            try FileManager.default.removeItem(atPath: directory(of: name))
        } catch {
            throw CLIError("cannot remove \(directory(of: name)): \(error.localizedDescription)")
        }
        try withLock {
            guard var file = try loadContextFileIfPresent(path: configPath), file.context(named: name) != nil else { return }
            file.remove(contextNamed: name)
            try saveContextFile(file, path: configPath)
        }
    }

    // MARK: - Locking

    /// Runs `body` holding an exclusive `flock` on `clusters/.lock`.
    func withLock<T>(_ body: () throws -> T) throws -> T {
        try ContextFileIO.makeDirectory(home, mode: 0o700)
        try ContextFileIO.makeDirectory(clustersDirectory, mode: 0o700)
        let path = clustersDirectory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CLIError("cannot open the registry lock \(path): \(ContextFileIO.errorString(errno))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw CLIError("cannot lock \(path): \(ContextFileIO.errorString(errno))")
            }
        }
        return try body()
    }
}
