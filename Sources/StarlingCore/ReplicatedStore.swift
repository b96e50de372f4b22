public import Foundation
/// Proof that a replica holds a duty: the lease's fencing token. A write made with a fence is
/// refused (`StoreError.fenced`) unless the lease is still this holder's, with this token.
public struct DutyFence: Sendable, Hashable, CustomStringConvertible {
    public var duty: String
    public var holder: String
    public var token: Int64
    public init(duty: String, holder: String, token: Int64) {
        self.duty = duty
        self.holder = holder
        self.token = token
    }
    public var description: String { "\(duty) (holder \(holder), token \(token))" }
}

/// Who holds a duty, as the shared store sees it.
public struct DutyHolder: Sendable, Hashable {
    public var duty: String
    public var holder: String
    public var token: Int64
    /// Seconds until the lease runs out, by the database's clock (negative: expired).
    public var expiresIn: Double
    public init(duty: String, holder: String, token: Int64, expiresIn: Double) {
        self.duty = duty
        self.holder = holder
        self.token = token
        self.expiresIn = expiresIn
    }
}

/// A controller replica as the shared store last saw it.
public struct ReplicaSeen: Sendable, Hashable {
    /// The replica, as duty leases name it (its API address and process id).
    public var replica: String
    /// Seconds since it last said it was alive, by the database's clock.
    public var secondsAgo: Double
    /// Its clock minus the database's, in seconds, at its last heartbeat.
    public var clockSkew: Double
    /// Its admin server (`HOST:PORT`: `/metrics`, what Prometheus scrapes); "" when unknown.
    public var adminAddress: String
    public init(replica: String, secondsAgo: Double, clockSkew: Double = 0, adminAddress: String = "") {
        self.replica = replica
        self.secondsAgo = secondsAgo
        self.clockSkew = clockSkew
        self.adminAddress = adminAddress
    }

    /// Its API address (what `replica` starts with), nil when that is a wildcard (`0.0.0.0`,
    /// `::`: no address to reach it at) or does not parse.
    public var apiAddress: HostPort? {
        let head = replica.prefix { $0 != " " }
        guard let address = HostPort(parsing: String(head)), !NetworkAddress.isWildcard(address.host) else { return nil }
        return address
    }
}

/// What a holder of a mesh certificate says it holds: the SHA-256 fingerprints of its
/// certificate's issuer and of the trust anchors it verifies peers with. `check` follows a trust
/// anchor rollover with these.
public struct CertificateReport: Sendable, Hashable {
    public var issuer: String
    public var trustAnchors: String
    public init(issuer: String, trustAnchors: String) {
        self.issuer = issuer
        self.trustAnchors = trustAnchors
    }
}

/// A certificate a replica issued to a gateway: the holder (`gateway at HOST`), what it reports,
/// and the certificate's own expiry. Past it the certificate is kept as long again as it was
/// valid (`lifetime`), reported as expired, then dropped.
public struct IssuedCertificate: Sendable, Hashable {
    public var holder: String
    public var report: CertificateReport
    /// The certificate's notAfter, as the issuing replica signed it.
    public var notValidAfter: Date
    /// How long it was valid when issued.
    public var lifetime: Duration
    public init(holder: String, report: CertificateReport, notValidAfter: Date, lifetime: Duration) {
        self.holder = holder
        self.report = report
        self.notValidAfter = notValidAfter
        self.lifetime = lifetime
    }
}

/// Every certificate report the shared store holds, whichever replica heard it.
public struct CertificateReportSet: Sendable, Hashable {
    /// What each registered workload's proxy last said in a heartbeat, for heartbeats within
    /// the report window.
    public var workloads: [ResourceKey: CertificateReport]
    /// What was issued to each gateway host; nil for a certificate that expired without being
    /// renewed (kept for as long again as it was valid, then dropped).
    public var gateways: [String: CertificateReport?]
    public init(workloads: [ResourceKey: CertificateReport] = [:], gateways: [String: CertificateReport?] = [:]) {
        self.workloads = workloads
        self.gateways = gateways
    }
}

/// A store several controller replicas share: besides resources, it holds the leases of the
/// duties that must run once per cluster and the heartbeats of registered workloads, so that any
/// replica may take a heartbeat and the one that holds lease expiry sees it. Every time it
/// compares is the database's, so a replica whose clock is off cannot stretch a lease.
public protocol ReplicatedStore: ResourceStore {
    /// Where the shared store is and which schema it has, for `check` ("PostgreSQL at
    /// db:5432, database starling, schema v5").
    var location: String { get }
    /// Takes or renews `duty` for `holder` for `ttl`; the fencing token when held, nil when
    /// another holder's lease is still valid. A new holder gets a larger token than any before.
    func acquireDuty(_ duty: String, holder: String, ttl: Duration) async throws -> Int64?
    /// Ends `holder`'s lease of `duty` now (another replica may take it at once).
    func releaseDuty(_ duty: String, holder: String) async throws
    /// Every duty's current lease.
    func dutyHolders() async throws -> [DutyHolder]
    /// Records that `replica`, its admin server at `adminAddress`, is alive now (every replica
    /// does, every second); returns its clock minus the database's, in seconds.
    @discardableResult
    func recordReplica(_ replica: String, adminAddress: String) async throws -> Double
    /// The replicas seen within the last hour, most recent first.
    func replicas() async throws -> [ReplicaSeen]
    /// `apply`, refused unless `fence` is still valid.
    func apply(_ resources: [Resource], fence: DutyFence) async throws -> [ApplyResult]
    /// `delete`, refused unless `fence` is still valid.
    func delete(_ key: ResourceKey, fence: DutyFence) async throws -> Resource?

    /// Records that workload `key` was registered (its lease starts now).
    func recordRegistration(_ key: ResourceKey) async throws
    /// Extends workload `key`'s lease, and records `report` when there is one; false when it
    /// has no lease (expired or never registered).
    func recordHeartbeat(_ key: ResourceKey, report: CertificateReport?) async throws -> Bool
    /// Ends workload `key`'s lease (deregistered).
    func forgetWorkload(_ key: ResourceKey) async throws
    /// Restarts every workload's lease now: a new holder of lease expiry gives proxies one
    /// full lease to reach it, as a restarted controller does.
    func restartWorkloadLeases() async throws
    /// Removes and returns the workloads whose last heartbeat is older than `lease`.
    func takeExpiredWorkloads(lease: Duration) async throws -> [ResourceKey]
    /// Records certificates this replica issued to gateways, each valid until its own notAfter
    /// (however late the write comes: the store may have been unreachable).
    func recordIssuedCertificates(_ issued: [IssuedCertificate]) async throws
    /// The workloads' reports from heartbeats of the last `window`, and the gateways' issued
    /// certificates, whichever replica took them.
    func certificateReports(window: Duration) async throws -> CertificateReportSet

    /// Drops the change history beyond what watches may still resume from; returns how many
    /// changes were dropped. (A store on one machine trims as it writes; a shared one leaves it
    /// to the replica holding the compaction duty.)
    @discardableResult
    func compact() async throws -> Int
}

/// A duty's view of the shared store: reads go straight through, every write carries the duty's
/// fence, so a replica that lost the lease writes nothing more as its holder.
public struct FencedStore: ResourceStore {
    public let base: any ReplicatedStore
    public let fence: DutyFence

    public init(base: any ReplicatedStore, fence: DutyFence) {
        self.base = base
        self.fence = fence
    }

    public func apply(_ resources: [Resource]) async throws -> [ApplyResult] { try await base.apply(resources, fence: fence) }
    public func delete(_ key: ResourceKey) async throws -> Resource? { try await base.delete(key, fence: fence) }
    public func get(_ key: ResourceKey) async throws -> Resource? { try await base.get(key) }
    public func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> [Resource] {
        try await base.list(kind: kind, namespace: namespace, selector: selector)
    }
    public func currentVersion() async throws -> Int64 { try await base.currentVersion() }
    public func watch(kinds: Set<String>?, fromVersion: Int64) -> AsyncThrowingStream<WatchEvent, any Error> {
        base.watch(kinds: kinds, fromVersion: fromVersion)
    }
}
