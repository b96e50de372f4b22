import Synchronization

/// Whether the proxy records per-request metrics (counters and latency histograms). On unless
/// the starting command says otherwise (`--metrics off`), which exists to measure what the
/// metrics cost: `bench/proxy-pair.sh` runs a pair with them off beside one with them on.
public enum RequestMetricsSwitch {
    private static let enabled = Atomic<Bool>(true)

    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    public static func set(_ on: Bool) { enabled.store(on, ordering: .relaxed) }
}
