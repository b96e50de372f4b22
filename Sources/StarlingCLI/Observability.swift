import Logging
import Metrics
import Prometheus

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
