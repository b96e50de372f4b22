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

    func run(now: Date = Date()) async -> [Starling_V1_CheckResult] {
        var results: [Starling_V1_CheckResult] = []
        results.append(await storeWritable())
        if let shared = store as? any ReplicatedStore {
            results.append(contentsOf: await replicaChecks(shared))
        }
        results.append(contentsOf: identityChecks(now: now))
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
