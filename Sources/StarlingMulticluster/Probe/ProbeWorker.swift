import Logging

/// Probes one linked cluster's gateway at the Link's period (jittered ±10 %), recording
/// liveness and latency in the registry. Logs liveness changes once each.
struct ProbeWorker: Sendable {
    var cluster: String
    var host: String
    var port: Int
    var path: String
    var period: Duration
    var registry: MulticlusterRegistry
    var logger: Logger

    func run() async {
        while !Task.isCancelled {
            let wasAlive = registry.isAlive(cluster)
            let started = ContinuousClock.now
            do {
                let status = try await HTTPProbe.get(host: host, port: port, path: path, timeout: min(period, .seconds(2)))
                let latency = ContinuousClock.now - started
                let ok = (200..<300).contains(status)
                registry.recordProbe(cluster, success: ok, latency: latency, error: ok ? nil : "probe answered \(status)")
            } catch {
                registry.recordProbe(cluster, success: false, latency: nil, error: "\(error)")
            }
            let alive = registry.isAlive(cluster)
            if alive != wasAlive {
                if alive {
                    logger.notice("gateway is alive again", metadata: ["cluster": "\(cluster)", "gateway": "\(host):\(port)"])
                } else {
                    logger.warning("gateway is dead", metadata: ["cluster": "\(cluster)", "gateway": "\(host):\(port)"])
                }
            }
            let jitter = Double.random(in: 0.9...1.1)
            try? await Task.sleep(for: period * jitter)
        }
    }
}
