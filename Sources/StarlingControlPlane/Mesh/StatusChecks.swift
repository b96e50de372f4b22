import Foundation
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import StarlingIdentity
import X509

/// The controller-side checks behind `starling check`: what only the controller can see.
struct StatusChecks {
    let store: any ResourceStore
    let identity: MeshIdentityState
    let index: DestinationIndex
    /// What the proxies reported in their heartbeats (the Mesh service's).
    let reports: CertificateReports

    func run(now: Date = Date()) async -> [Starling_V1_CheckResult] {
        var results: [Starling_V1_CheckResult] = []
        results.append(await storeWritable())
        if let shared = store as? any ReplicatedStore {
            results.append(contentsOf: await replicaChecks(shared))
        }
        results.append(contentsOf: identityChecks(now: now))
        results.append(contentsOf: await rolloverChecks())
        let links = (try? await store.list(kind: "Link", namespace: nil, selector: nil)) ?? []
        let linked = Set(links.compactMap { try? LinkSpec($0).targetClusterName })
        results.append(contentsOf: PolicyChecks(snapshot: index.snapshot, linkedClusters: linked).run())
        results.append(
            index.isReady
                ? .ok("destination index is current", "destination")
                : .error("destination index has not loaded yet", "destination", hint: "wait a few seconds; if it persists, see the controller log"))
        return results
    }

    /// Writes and deletes a probe resource: proves the store takes writes (disk not full,
    /// file writable), not just reads.
    private func storeWritable() async -> Starling_V1_CheckResult {
        let probe = Resource(
            apiVersion: "v1", kind: "Secret",
            metadata: ObjectMeta(name: "starling-store-probe", namespace: "starling"),
            body: JSONObject([("data", .object(JSONObject([("probe", .string(Data(UUID().uuidString.utf8).base64EncodedString()))])))]))
        do {
            _ = try await store.apply([probe])
            _ = try await store.delete(probe.key)
            return .ok("store is writable", "store")
        } catch {
            return .error("store is not writable: \(error)", "store", hint: "check the disk space and permissions of the controller's data directory")
        }
    }

    /// Replicas sharing the store: how many are alive, and which holds each duty.
    private func replicaChecks(_ shared: any ReplicatedStore) async -> [Starling_V1_CheckResult] {
        var results: [Starling_V1_CheckResult] = []
        do {
            let asked = ContinuousClock.now
            _ = try await shared.currentVersion()
            let took = ContinuousClock.now - asked
            results.append(.ok("store: \(shared.location), answering in \(String(format: "%.1f", took.inMilliseconds)) ms", "store-reach"))
            let seen = try await shared.replicas()
            let live = seen.filter { $0.secondsAgo < 5 }
            let gone = seen.filter { $0.secondsAgo >= 5 }
            if gone.isEmpty {
                results.append(.ok("\(live.count)/\(seen.count) controller replicas are alive", "replicas"))
            } else {
                results.append(
                    .warning(
                        "\(live.count)/\(seen.count) controller replicas are alive; not seen: "
                            + gone.map { "\($0.replica) (\(Int($0.secondsAgo)) s ago)" }.joined(separator: ", "),
                        "replicas",
                        hint: "start the missing replicas again; a replica that left for good drops off this list after an hour"))
            }
            let skewed = live.filter { abs($0.clockSkew) > ReplicaClock.defaultLimit }
            if skewed.isEmpty {
                let worst = live.map { abs($0.clockSkew) }.max() ?? 0
                results.append(.ok("replica clocks agree with the database's (largest skew \(ReplicaClock.magnitude(worst)))", "replica-clocks"))
            }
            for replica in skewed {
                results.append(
                    .error(
                        "replica \(replica.replica)'s clock is \(ReplicaClock.describe(replica.clockSkew)) the database's; it signs no certificates",
                        "replica-clocks",
                        hint: "sync its clock (chrony or systemd-timesyncd); the other replicas sign meanwhile"))
            }
            let holders = Dictionary(uniqueKeysWithValues: try await shared.dutyHolders().map { ($0.duty, $0) })
            for duty in Duty.all {
                if let holder = holders[duty], holder.expiresIn > 0 {
                    results.append(.ok("\(duty) is held by \(holder.holder) (token \(holder.token))", "duty-\(duty)"))
                } else {
                    results.append(
                        .error(
                            "no replica holds \(duty)", "duty-\(duty)",
                            hint: "a live replica takes it within 5 s; if this lasts, see the controllers' logs (duty taken / stopped)"))
                }
            }
        } catch {
            results.append(.error("cannot read the replicas from the store: \(error)", "replicas", hint: "check the database"))
        }
        return results
    }

    private func identityChecks(now: Date) -> [Starling_V1_CheckResult] {
        guard let configuration = identity.configuration else {
            return [.error(identity.problem ?? "identity is not configured", "identity",
                           hint: "run `starling install --identity-trust-anchors-file ... | starling apply -f -`")]
        }
        var results: [Starling_V1_CheckResult] = [.ok("identity is configured (trust domain \(configuration.trustDomain))", "identity")]
        if let problem = identity.problem {
            results.append(.error("the latest identity configuration was refused: \(problem)", "identity", hint: "fix the MeshConfig or issuer secret and apply again; the previous issuer stays in use"))
        }
        let issuer = configuration.issuerCertificate
        if issuer.notValidAfter < now {
            results.append(.error("issuer certificate expired at \(issuer.notValidAfter)", "issuer", hint: "create a new issuer with `starling certs create ... --profile intermediate-ca` and install again"))
        } else {
            results.append(.ok("issuer certificate is valid and chains to the trust anchors", "issuer"))
            let days = issuer.notValidAfter.timeIntervalSince(now) / 86400
            if days < 60 {
                results.append(.warning("issuer certificate expires in \(Int(days)) days (\(issuer.notValidAfter))", "issuer-expiry", hint: "rotate the issuer before it expires: workloads cannot renew after that"))
            } else {
                results.append(.ok("issuer certificate is not expiring within 60 days", "issuer-expiry"))
            }
        }
        return results
    }
}

extension StatusChecks {
    /// Where a trust anchor rollover stands, from the MeshConfig's roots, the issuer, and what
    /// each registered proxy last reported in its heartbeats (``CertificateReports``):
    /// 1. old and new roots trusted, the issuer still signed by the old root — wait until every
    ///    proxy trusts both, then install an issuer signed by the new root;
    /// 2. the issuer signed by the new root — wait until every proxy holds a certificate from
    ///    it, then remove the old root;
    /// 3. one root again.
    /// Proxies (and gateways) that still trust only the old roots, or hold a certificate from a
    /// previous issuer, are warnings: the next step would break their connections.
    func rolloverChecks() async -> [Starling_V1_CheckResult] {
        guard let configuration = identity.configuration else { return [] }
        let anchors = configuration.trust.anchors
        let issuer = configuration.issuerCertificate
        let issuerPrint = issuer.sha256Fingerprint
        let anchorsPrint = configuration.trust.fingerprint
        let workloads: [Resource]
        do {
            workloads = try await store.list(kind: "Workload", namespace: nil, selector: nil)
        } catch {
            return [.error("cannot list workloads: \(error)", "rollover", hint: "check the store")]
        }
        // Every holder of a mesh certificate the cluster knows of: the gateways issued
        // certificates (named first: few, and every linked cluster's calls cross them), and the
        // registered workloads' proxies that reported.
        let known: CertificateReportSet
        do {
            known = try await reports.all()
        } catch {
            return [.error("cannot read the certificate reports: \(error)", "rollover", hint: "check the store")]
        }
        let reported = known.workloads
        let reporting: [(name: String, report: CertificateReports.Report)] =
            known.gateways.sorted { $0.key < $1.key }.map { holder, report in
                // An expired certificate is from no current chain: the gateway lags every step.
                report.map { (holder, $0) } ?? ("\(holder) (certificate expired, not renewed)", .init(issuer: "", trustAnchors: ""))
            }
            + workloads.compactMap { w in
                reported[w.key].map { ("\(w.metadata.namespace ?? "default")/\(w.metadata.name)", $0) }
            }
        func named(_ list: [(name: String, report: CertificateReports.Report)]) -> String {
            let names = list.prefix(5).map(\.name)
            return names.joined(separator: ", ") + (list.count > 5 ? " and \(list.count - 5) more" : "")
        }
        let oldCertificate = reporting.filter { $0.report.issuer != issuerPrint }
        let oldAnchors = reporting.filter { $0.report.trustAnchors != anchorsPrint }
        let lifetime = GoDuration.format(configuration.issuanceLifetime)
        var results: [Starling_V1_CheckResult] = []
        guard anchors.count > 1 else {
            let gateways = known.gateways.count
            results.append(.ok(
                "trust anchors: one root, no rollover in progress (certificates reported by \(reporting.count - gateways) "
                    + "\(reporting.count - gateways == 1 ? "proxy" : "proxies") and \(gateways) \(gateways == 1 ? "gateway" : "gateways"))",
                "rollover"))
            if !oldCertificate.isEmpty {
                results.append(.warning(
                    "\(oldCertificate.count) of \(reporting.count) proxies still hold a certificate from a previous issuer: \(named(oldCertificate))",
                    "rollover-proxies",
                    hint: "they renew within the issuance lifetime (\(lifetime)); restart a proxy that does not"))
            }
            if !oldAnchors.isEmpty {
                results.append(.warning(
                    "\(oldAnchors.count) of \(reporting.count) proxies trust other roots than the mesh's: \(named(oldAnchors))",
                    "rollover-anchors",
                    hint: "they take the mesh's roots at their next renewal (within \(lifetime)); restart a proxy that does not"))
            }
            return results
        }
        // The new root is the one made last (on a tie, the bundle's last): roots of a rollover
        // usually share a subject, so the issuer's signature tells which one signed it.
        let newest = anchors.indices.max { (anchors[$0].notValidBefore, $0) < (anchors[$1].notValidBefore, $1) }.map { anchors[$0] }
        let signedByNewest = newest.map { $0.publicKey.isValidSignature(issuer.signature, for: issuer) } ?? false
        if !signedByNewest {
            results.append(.ok(
                "trust anchor rollover, phase 1 of 3: \(anchors.count) roots trusted; the issuer is still signed by the old root \(issuer.issuer)",
                "rollover"))
            if oldAnchors.isEmpty {
                results.append(.ok(
                    "every proxy (\(reporting.count)) trusts all \(anchors.count) roots; next: install an issuer signed by the new root",
                    "rollover-anchors"))
            } else {
                results.append(.warning(
                    "\(oldAnchors.count) of \(reporting.count) proxies do not trust the new root yet: \(named(oldAnchors))",
                    "rollover-anchors",
                    hint: "wait for their next renewal (within \(lifetime)) before installing an issuer signed by the new root"))
            }
        } else {
            results.append(.ok(
                "trust anchor rollover, phase 2 of 3: the issuer is signed by the new root \(issuer.issuer); \(anchors.count) roots trusted",
                "rollover"))
            if oldCertificate.isEmpty && oldAnchors.isEmpty {
                results.append(.ok(
                    "every proxy (\(reporting.count)) holds a certificate from the new issuer; next: install with the new root alone",
                    "rollover-proxies"))
            } else {
                let lagging = reporting.filter { $0.report != .init(issuer: issuerPrint, trustAnchors: anchorsPrint) }
                results.append(.warning(
                    "\(lagging.count) of \(reporting.count) proxies still hold a certificate from the old chain: \(named(lagging))",
                    "rollover-proxies",
                    hint: "wait for their next renewal (within \(lifetime)) before removing the old root"))
            }
        }
        return results
    }
}

extension Starling_V1_CheckResult {
    static func ok(_ message: String, _ name: String) -> Self {
        .with { $0.name = name; $0.status = "ok"; $0.message = message }
    }
    static func warning(_ message: String, _ name: String, hint: String) -> Self {
        .with { $0.name = name; $0.status = "warning"; $0.message = message; $0.hint = hint }
    }
    static func error(_ message: String, _ name: String, hint: String) -> Self {
        .with { $0.name = name; $0.status = "error"; $0.message = message; $0.hint = hint }
    }
}
