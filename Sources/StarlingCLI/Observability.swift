import ArgumentParser
import Logging
import Metrics
import Prometheus
import StarlingProxy

/// The starting command's one-time setup of logging and metrics (libraries only use the
/// swift-log and swift-metrics APIs; STYLE.md §7).
enum Observability {
    /// Logs to standard error at `level`, one line per event.
    static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// A proxy's metrics: a Prometheus registry, or — with `--metrics off`, to measure what
    /// they cost — none at all (no backend, no per-request recording).
    static func bootstrapProxyMetrics(_ setting: MetricsSetting) -> @Sendable () -> String {
        guard setting == .off else { return bootstrapPrometheus() }
        RequestMetricsSwitch.set(false)
        MetricsSystem.bootstrap(NOOPMetricsHandler.instance)
        return { "# metrics are off (started with --metrics off)\n" }
    }

    /// Sends metrics to a Prometheus registry and returns its text exposition for `/metrics`.
    static func bootstrapPrometheus() -> @Sendable () -> String {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return {
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
    }
}

/// `--metrics on|off` of the commands that run a proxy.
enum MetricsSetting: String, ExpressibleByArgument, CaseIterable {
    case on, off
}
