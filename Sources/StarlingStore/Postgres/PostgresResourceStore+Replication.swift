import Foundation
import Logging
import PostgresNIO
public import StarlingCore

/// Duty leases and workload heartbeats in the shared database. Every expiry is computed with the
/// database's `now()`, so replicas' clocks do not matter.
extension PostgresResourceStore: ReplicatedStore {
    public var location: String {
        "PostgreSQL at \(NetworkAddress.joinHostPort(url.host, url.port)), database \(url.database), schema v\(schemaVersion)"
    }

    public func acquireDuty(_ duty: String, holder: String, ttl: Duration) async throws -> Int64? {
        let seconds = ttl.inSeconds
        return try await access("taking the \(duty) lease") { client in
            // A holder renewing a live lease keeps its token; anyone else (or a holder whose lease
            // ran out) gets the next one. No row comes back while another holder's lease is live.
            let rows = try await client.query(
                """
                INSERT INTO starling_duties AS d (duty, holder, token, expires_at)
                VALUES (\(duty), \(holder), 1, now() + make_interval(secs => \(seconds)))
                ON CONFLICT (duty) DO UPDATE SET
                    token = CASE WHEN d.holder = excluded.holder AND d.expires_at > now() THEN d.token ELSE d.token + 1 END,
                    holder = excluded.holder,
                    expires_at = excluded.expires_at
                WHERE d.holder = excluded.holder OR d.expires_at <= now()
                RETURNING token
                """)
            for try await token in rows.decode(Int64.self) { return token }
            return nil
        }
    }

    public func releaseDuty(_ duty: String, holder: String) async throws {
        try await access("releasing the \(duty) lease") { client in
            try await client.query(
                "UPDATE starling_duties SET expires_at = now() WHERE duty = \(duty) AND holder = \(holder) AND expires_at > now()")
        }
    }

    public func dutyHolders() async throws -> [DutyHolder] {
        try await access("reading the duty leases") { client in
            var holders: [DutyHolder] = []
            for try await (duty, holder, token, left) in try await client.query(
                "SELECT duty, holder, token, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM starling_duties ORDER BY duty"
            ).decode((String, String, Int64, Double).self) {
                holders.append(DutyHolder(duty: duty, holder: holder, token: token, expiresIn: left))
            }
            return holders
        }
    }

    public func recordReplica(_ replica: String, adminAddress: String) async throws -> Double {
        try await access("recording replica \(replica)", probe: true) { client in
            // This replica's clock, read as the statement leaves: its skew is against `now()`.
            let local = Date().timeIntervalSince1970
            var skew = 0.0
            for try await value in try await client.query(
                """
                INSERT INTO starling_replicas (replica, seen_at, clock_skew, admin_address)
                VALUES (\(replica), now(), \(local) - EXTRACT(EPOCH FROM now())::float8, \(adminAddress))
                ON CONFLICT (replica) DO UPDATE SET seen_at = now(), clock_skew = excluded.clock_skew,
                    admin_address = excluded.admin_address
                RETURNING clock_skew
                """
            ).decode(Double.self) {
                skew = value
            }
            // Forget replicas gone for a day (their rows would only grow with restarts).
            try await client.query("DELETE FROM starling_replicas WHERE seen_at < now() - interval '1 day'")
            return skew
        }
    }

    public func replicas() async throws -> [ReplicaSeen] {
        try await access("reading the replicas") { client in
            var seen: [ReplicaSeen] = []
            for try await (replica, ago, skew, admin) in try await client.query(
                """
                SELECT replica, EXTRACT(EPOCH FROM now() - seen_at)::float8, clock_skew, admin_address FROM starling_replicas
                WHERE seen_at > now() - interval '1 hour' ORDER BY seen_at DESC
                """
            ).decode((String, Double, Double, String).self) {
                seen.append(ReplicaSeen(replica: replica, secondsAgo: ago, clockSkew: skew, adminAddress: admin))
            }
            return seen
        }
    }

    public func apply(_ resources: [Resource], fence: DutyFence) async throws -> [ApplyResult] {
        try await apply(resources, fencedBy: fence)
    }

    public func delete(_ key: ResourceKey, fence: DutyFence) async throws -> Resource? {
        try await delete(key, fencedBy: fence)
    }

    /// Inside a write transaction (after the version lock): refuses the write unless `fence`'s
    /// lease is still live with its token. Writers are serialized by the version lock, so the
    /// writes of a holder that lost the lease cannot interleave with the new holder's.
    static func check(_ fence: DutyFence, _ connection: PostgresConnection, logger: Logger) async throws {
        for try await _ in try await connection.query(
            """
            SELECT 1 FROM starling_duties
            WHERE duty = \(fence.duty) AND holder = \(fence.holder) AND token = \(fence.token) AND expires_at > now()
            """, logger: logger
        ).decode(Int.self) {
            return
        }
        throw StoreError(
            .fenced, "this replica no longer holds the \(fence.duty) lease (token \(fence.token)); the write was refused")
    }

    // MARK: - Workload heartbeats

    public func recordRegistration(_ key: ResourceKey) async throws {
        let namespace = key.namespace ?? ""
        try await access("recording the registration of \(key)") { client in
            try await client.query(
                """
                INSERT INTO starling_heartbeats (namespace, name, seen_at) VALUES (\(namespace), \(key.name), now())
                ON CONFLICT (namespace, name) DO UPDATE SET seen_at = now(), reported_at = NULL
                """)
        }
    }

    public func recordHeartbeat(_ key: ResourceKey, report: CertificateReport?) async throws -> Bool {
        let namespace = key.namespace ?? ""
        return try await access("recording a heartbeat of \(key)") { client in
            let rows =
                if let report {
                    try await client.query(
                        """
                        UPDATE starling_heartbeats SET seen_at = now(), issuer = \(report.issuer),
                            trust_anchors = \(report.trustAnchors), reported_at = now()
                        WHERE namespace = \(namespace) AND name = \(key.name) RETURNING 1
                        """)
                } else {
                    try await client.query(
                        "UPDATE starling_heartbeats SET seen_at = now() WHERE namespace = \(namespace) AND name = \(key.name) RETURNING 1")
                }
            for try await _ in rows.decode(Int.self) {
                return true
            }
            return false
        }
    }

    public func forgetWorkload(_ key: ResourceKey) async throws {
        let namespace = key.namespace ?? ""
        try await access("forgetting \(key)") { client in
            try await client.query("DELETE FROM starling_heartbeats WHERE namespace = \(namespace) AND name = \(key.name)")
        }
    }

    public func restartWorkloadLeases() async throws {
        try await access("restarting the workload leases") { client in
            try await client.query("UPDATE starling_heartbeats SET seen_at = now() WHERE seen_at < now()")
        }
    }

    public func takeExpiredWorkloads(lease: Duration) async throws -> [ResourceKey] {
        let seconds = lease.inSeconds
        return try await access("taking the expired workloads") { client in
            var keys: [ResourceKey] = []
            for try await (namespace, name) in try await client.query(
                """
                DELETE FROM starling_heartbeats WHERE seen_at < now() - make_interval(secs => \(seconds))
                RETURNING namespace, name
                """
            ).decode((String, String).self) {
                keys.append(ResourceKey(kind: "Workload", namespace: namespace.isEmpty ? nil : namespace, name: name))
            }
            return keys
        }
    }

    // MARK: - Certificate reports

    public func recordIssuedCertificates(_ issued: [IssuedCertificate]) async throws {
        guard !issued.isEmpty else { return }
        try await access("recording \(issued.count) gateway certificate(s) issued") { client in
            for certificate in issued {
                // The certificate's own notAfter, not now() plus its lifetime: the write may come
                // long after the signing (it waits for the replica's next heartbeat, or for the
                // database to answer again). Past it a certificate is kept as long again,
                // reported as expired.
                let notValidAfter = certificate.notValidAfter.timeIntervalSince1970
                let lifetime = certificate.lifetime.inSeconds
                try await client.query(
                    """
                    INSERT INTO starling_gateway_certificates (holder, issuer, trust_anchors, valid_until, forget_at)
                    VALUES (\(certificate.holder), \(certificate.report.issuer), \(certificate.report.trustAnchors),
                        to_timestamp(\(notValidAfter)), to_timestamp(\(notValidAfter)) + make_interval(secs => \(lifetime)))
                    ON CONFLICT (holder) DO UPDATE SET issuer = excluded.issuer, trust_anchors = excluded.trust_anchors,
                        valid_until = excluded.valid_until, forget_at = excluded.forget_at
                    """)
            }
            try await client.query("DELETE FROM starling_gateway_certificates WHERE forget_at < now()")
        }
    }

    public func certificateReports(window: Duration) async throws -> CertificateReportSet {
        let seconds = window.inSeconds
        return try await access("reading the certificate reports") { client in
            var reports = CertificateReportSet()
            for try await (namespace, name, issuer, anchors) in try await client.query(
                """
                SELECT namespace, name, issuer, trust_anchors FROM starling_heartbeats
                WHERE reported_at > now() - make_interval(secs => \(seconds))
                """
            ).decode((String, String, String, String).self) {
                let key = ResourceKey(kind: "Workload", namespace: namespace.isEmpty ? nil : namespace, name: name)
                reports.workloads[key] = CertificateReport(issuer: issuer, trustAnchors: anchors)
            }
            for try await (holder, issuer, anchors, valid) in try await client.query(
                """
                SELECT holder, issuer, trust_anchors, valid_until > now() FROM starling_gateway_certificates
                WHERE forget_at > now()
                """
            ).decode((String, String, String, Bool).self) {
                reports.gateways[holder] = .some(valid ? CertificateReport(issuer: issuer, trustAnchors: anchors) : nil)
            }
            return reports
        }
    }
}
