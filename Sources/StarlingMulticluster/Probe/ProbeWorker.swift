import Logging
import StarlingCore

/// Probes one gateway of a linked cluster at the Link's period (jittered ±10 %), recording
/// liveness and latency in the registry. Logs liveness changes once each.
struct ProbeWorker: Sendable {
    var cluster: String
    var host: String
    /// The gateway's traffic port: with `host`, how the registry names the gateway.
    var gatewayPort: Int
    /// The probe port.
    var port: Int
    var path: String
    var period: Duration
    var registry: MulticlusterRegistry
    var logger: Logger

    func run() async {
        while !Task.isCancelled {
            let gateway = NetworkAddress.joinHostPort(host, gatewayPort)
            let wasAlive = registry.isAlive(cluster, gateway: gateway)
            let started = ContinuousClock.now
            do {
                let status = try await HTTPProbe.get(host: host, port: port, path: path, timeout: min(period, .seconds(2)))
                let latency = ContinuousClock.now - started
                let ok = (200..<300).contains(status)
                registry.recordProbe(cluster, gateway: gateway, success: ok, latency: latency, error: ok ? nil : "probe answered \(status)")
            } catch {
                registry.recordProbe(cluster, gateway: gateway, success: false, latency: nil, error: "\(error)")
            }
            let alive = registry.isAlive(cluster, gateway: gateway)
            if alive != wasAlive {
                if alive {
                    logger.notice("gateway is alive again", metadata: ["cluster": "\(cluster)", "gateway": "\(gateway)"])
                } else {
                    logger.warning("gateway is dead", metadata: ["cluster": "\(cluster)", "gateway": "\(gateway)"])
                }
            }
            let jitter = Double.random(in: 0.9...1.1)
            try? await Task.sleep(for: period * jitter)
        }
    }
}
