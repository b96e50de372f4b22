import Foundation
import PostgresNIO
import StarlingCore
import Testing

@testable import StarlingStore

/// Duty leases with fencing tokens and workload heartbeats, on two replicas of one database.
@Suite(.enabled(if: PostgresTestServer.available, PostgresTestServer.skipReason))
struct PostgresReplicationTests {
    @Test func aDutyHasOneHolderAndANewHolderGetsALargerToken() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let first = try #require(try await a.acquireDuty("mirror", holder: "a", ttl: .seconds(30)))
                    #expect(try await b.acquireDuty("mirror", holder: "b", ttl: .seconds(30)) == nil)
                    // Renewing a live lease keeps the token.
                    #expect(try await a.acquireDuty("mirror", holder: "a", ttl: .seconds(30)) == first)
                    let holders = try await b.dutyHolders()
                    #expect(holders.map(\.holder) == ["a"])
                    #expect(holders.first.map { $0.expiresIn > 25 && $0.expiresIn <= 30 } == true)

                    try await a.releaseDuty("mirror", holder: "a")
                    let second = try #require(try await b.acquireDuty("mirror", holder: "b", ttl: .seconds(30)))
                    #expect(second > first)
                    #expect(try await a.acquireDuty("mirror", holder: "a", ttl: .seconds(30)) == nil)
                }
            }
        }
    }

    @Test func anExpiredLeaseIsTakenOverWithoutARelease() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let first = try #require(try await a.acquireDuty("expiry", holder: "a", ttl: .seconds(2)))
                    #expect(try await b.acquireDuty("expiry", holder: "b", ttl: .seconds(30)) == nil)
                    try await Task.sleep(for: .milliseconds(2_200))
                    let second = try #require(try await b.acquireDuty("expiry", holder: "b", ttl: .seconds(30)))
                    #expect(second == first + 1)
                }
            }
        }
    }

    /// The fence: a holder that lost its lease (expired, taken over) writes nothing more.
    @Test func writesOfAHolderThatLostTheLeaseAreRefused() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let tokenA = try #require(try await a.acquireDuty("mirror", holder: "a", ttl: .seconds(2)))
                    let fenceA = DutyFence(duty: "mirror", holder: "a", token: tokenA)
                    #expect(try await a.apply([service("m1")], fence: fenceA).map(\.outcome) == [.created])

                    try await Task.sleep(for: .milliseconds(2_200))
                    let tokenB = try #require(try await b.acquireDuty("mirror", holder: "b", ttl: .seconds(30)))
                    let fenceB = DutyFence(duty: "mirror", holder: "b", token: tokenB)

                    let refused = await #expect(throws: StoreError.self) { try await a.apply([service("m2")], fence: fenceA) }
                    #expect(refused?.code == .fenced)
                    let refusedDelete = await #expect(throws: StoreError.self) { try await a.delete(service("m1").key, fence: fenceA) }
                    #expect(refusedDelete?.code == .fenced)
                    #expect(try await b.get(service("m2").key) == nil)
                    #expect(try await b.get(service("m1").key) != nil)

                    // Even the old holder's own renewal cannot revive the old token.
                    #expect(try await a.acquireDuty("mirror", holder: "a", ttl: .seconds(30)) == nil)
                    #expect(try await b.apply([service("m2")], fence: fenceB).map(\.outcome) == [.created])
                    #expect(try await b.delete(service("m1").key, fence: fenceB) != nil)
                    // A store wrapped for a duty carries the fence on every write.
                    let fenced = FencedStore(base: a, fence: fenceA)
                    await #expect(throws: StoreError.self) { try await fenced.apply([service("m3")]) }
                    #expect(try await fenced.list(kind: "Service", namespace: "default", selector: nil).map(\.metadata.name) == ["m2"])
                }
            }
        }
    }

    @Test func aHeartbeatTakenByAnyReplicaCountsAndExpiryTakesEachWorkloadOnce() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let alive = ResourceKey(kind: "Workload", namespace: "test", name: "alive")
                    let dead = ResourceKey(kind: "Workload", namespace: "test", name: "dead")
                    try await a.recordRegistration(alive)
                    try await a.recordRegistration(dead)
                    #expect(try await b.recordHeartbeat(ResourceKey(kind: "Workload", namespace: "test", name: "never"), report: nil) == false)
                    try await Task.sleep(for: .milliseconds(2_500))
                    #expect(try await b.recordHeartbeat(alive, report: nil))
                    let expired = try await a.takeExpiredWorkloads(lease: .seconds(2))
                    #expect(expired == [dead])
                    #expect(try await b.takeExpiredWorkloads(lease: .seconds(2)).isEmpty)
                    #expect(try await b.recordHeartbeat(dead, report: nil) == false)
                    try await b.forgetWorkload(alive)
                    #expect(try await a.recordHeartbeat(alive, report: nil) == false)
                }
            }
        }
    }

    /// `check` on any replica weighs every proxy's and every gateway's certificate: reports
    /// taken by one replica are read by another; a gateway certificate past its expiry is
    /// reported expired, then dropped; a new registration starts without a report.
    @Test func certificateReportsTakenByOneReplicaAreReadByAnother() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let proxy = ResourceKey(kind: "Workload", namespace: "test", name: "caller-1")
                    let old = CertificateReport(issuer: "old-issuer", trustAnchors: "old-roots")
                    let new = CertificateReport(issuer: "new-issuer", trustAnchors: "new-roots")
                    try await a.recordRegistration(proxy)
                    #expect(try await b.certificateReports(window: .seconds(120)).workloads.isEmpty)
                    #expect(try await a.recordHeartbeat(proxy, report: old))
                    #expect(try await b.certificateReports(window: .seconds(120)).workloads == [proxy: old])
                    // A heartbeat without a report keeps the last one.
                    #expect(try await b.recordHeartbeat(proxy, report: nil))
                    #expect(try await a.certificateReports(window: .seconds(120)).workloads == [proxy: old])
                    #expect(try await b.recordHeartbeat(proxy, report: new))
                    #expect(try await a.certificateReports(window: .seconds(120)).workloads == [proxy: new])
                    try await a.recordRegistration(proxy)
                    #expect(try await b.certificateReports(window: .seconds(120)).workloads.isEmpty)

                    try await a.recordIssuedCertificates([
                        Self.issued("gateway at 10.0.0.1", old, for: .seconds(1)), Self.issued("gateway at 10.0.0.2", new, for: .seconds(60)),
                    ])
                    #expect(try await b.certificateReports(window: .seconds(120)).gateways == [
                        "gateway at 10.0.0.1": old, "gateway at 10.0.0.2": new,
                    ])
                    try await Task.sleep(for: .milliseconds(1_200))
                    let expired: [String: CertificateReport?] = ["gateway at 10.0.0.1": nil, "gateway at 10.0.0.2": new]
                    #expect(try await b.certificateReports(window: .seconds(120)).gateways == expired)
                    try await Task.sleep(for: .milliseconds(1_000))
                    // Renewed by another replica: the newest issue counts.
                    try await b.recordIssuedCertificates([Self.issued("gateway at 10.0.0.2", old, for: .seconds(60))])
                    #expect(try await a.certificateReports(window: .seconds(120)).gateways == ["gateway at 10.0.0.2": old])
                    // Written late (the database was down when it was signed): it expires at its
                    // own notAfter, not a lifetime after the write.
                    try await b.recordIssuedCertificates([
                        IssuedCertificate(
                            holder: "gateway at 10.0.0.3", report: new, notValidAfter: Date() - 5, lifetime: .seconds(60))
                    ])
                    #expect(try await a.certificateReports(window: .seconds(120)).gateways["gateway at 10.0.0.3"] == .some(nil))
                }
            }
        }
    }

    @Test func replicasSayTheyAreAliveAndAreListedMostRecentFirst() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await a.recordReplica("10.0.0.1:8086 pid 1", adminAddress: "10.0.0.1:9990")
                try await Task.sleep(for: .milliseconds(50))
                try await a.recordReplica("10.0.0.2:8086 pid 2", adminAddress: "10.0.0.2:9990")
                let seen = try await a.replicas()
                #expect(seen.map(\.replica) == ["10.0.0.2:8086 pid 2", "10.0.0.1:8086 pid 1"])
                #expect(seen.map(\.adminAddress) == ["10.0.0.2:9990", "10.0.0.1:9990"])
                #expect(seen.allSatisfy { $0.secondsAgo >= 0 && $0.secondsAgo < 5 })
            }
        }
    }

    /// A certificate issued now, valid for `lifetime`.
    private static func issued(_ holder: String, _ report: CertificateReport, for lifetime: Duration) -> IssuedCertificate {
        IssuedCertificate(
            holder: holder, report: report, notValidAfter: Date() + Double(lifetime.components.seconds), lifetime: lifetime)
    }
}
