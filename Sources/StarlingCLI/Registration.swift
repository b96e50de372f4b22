import Foundation
import GRPCCore
import Logging
import StarlingAPI
import StarlingCore
import StarlingProxy
import SwiftProtobuf

/// Registers a workload with its join token and keeps it registered: heartbeats at the interval
/// the controller asks for (each naming the issuer and trust anchors of the proxy's certificate),
/// registering again when the controller has forgotten it (a restart), riding out controller
/// outages.
enum Registration {
    /// The ports a workload registers (its proxy sends the same to the Policy API before the
    /// registration lands): the inbound port carrying the application's, named `http`; none for
    /// a client only.
    static func ports(inboundPort: Int, appPort: Int?) -> [WorkloadPort] {
        appPort.map { [WorkloadPort(name: "http", port: inboundPort, appPort: $0)] } ?? []
    }

    static func keepRegistered(
        _ context: ResolvedContext, name: String, address: String, inboundPort: Int, appPort: Int?, adminPort: Int,
        labels: [String: String], defaultInboundPolicy: String? = nil, logger: Logger,
        certificate: @escaping @Sendable () -> Proxy.CertificateReport? = { nil }
    ) async throws {
        var request = Starling_V1_RegisterRequest()
        request.name = name
        request.address = address
        request.adminPort = UInt32(adminPort)
        // Without an application port the workload is a client only: listed (scraped, tapped),
        // never an endpoint of a service.
        request.ports = ports(inboundPort: inboundPort, appPort: appPort).map { p in
            .with {
                $0.name = p.name ?? ""
                $0.port = UInt32(p.port)
                $0.appPort = UInt32(p.appPort ?? 0)
            }
        }
        request.labels = labels
        request.defaultInboundPolicy = defaultInboundPolicy ?? ""
        var registered: Starling_V1_RegisterResponse?
        while !Task.isCancelled {
            do {
                try await ControllerClient.with(context, timeout: .seconds(5)) { client in
                    if registered == nil {
                        registered = try await client.mesh.register(request)
                        logger.notice(
                            appPort == nil ? "workload registered as a client only" : "workload registered",
                            metadata: ["workload": "\(registered?.namespace ?? "")/\(name)"])
                    }
                    while !Task.isCancelled, let current = registered {
                        try await Task.sleep(for: .milliseconds(max(200, current.heartbeatIntervalMs)))
                        let report = certificate()
                        let answer = try await client.mesh.heartbeat(.with {
                            $0.namespace = current.namespace
                            $0.name = name
                            $0.certificateIssuerSha256 = report?.issuer ?? ""
                            $0.trustAnchorsSha256 = report?.trustAnchors ?? ""
                        })
                        if !answer.known {
                            logger.notice("the controller forgot this workload; registering again")
                            registered = nil
                            return
                        }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("registration with the controller failed; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Deregisters workload `namespace/name` within 3 s, whether or not the caller is being
    /// cancelled (a command's task group is, once its proxy or application stopped); false when
    /// the controller could not be told (the workload's lease then expires by itself).
    static func deregister(_ context: ResolvedContext, namespace: String, name: String, logger: Logger) async -> Bool {
        await Task {
            do {
                try await ControllerClient.with(context, timeout: .seconds(3)) { client in
                    _ = try await client.mesh.deregister(.with { $0.namespace = namespace; $0.name = name })
                }
                return true
            } catch {
                logger.warning("deregistering the workload failed; its lease expires", metadata: ["error": "\(error)"])
                return false
            }
        }.value
    }
}
