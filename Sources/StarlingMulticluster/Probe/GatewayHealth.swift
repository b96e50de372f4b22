/// Whether a linked cluster's gateway is alive: dead after `failureThreshold` consecutive failed
/// probes, alive again after one success. A pure value; the probe worker drives it.
public struct GatewayHealth: Sendable, Equatable {
    public var failureThreshold: Int
    public private(set) var alive: Bool
    public private(set) var consecutiveFailures = 0

    /// A new gateway counts as alive until probes say otherwise, so that a link's first
    /// requests are not refused while the first probe is in flight.
    public init(failureThreshold: Int = 3, alive: Bool = true) {
        self.failureThreshold = max(1, failureThreshold)
        self.alive = alive
    }

    /// Records a probe; returns true when liveness changed.
    public mutating func record(success: Bool) -> Bool {
        let before = alive
        if success {
            consecutiveFailures = 0
            alive = true
        } else {
            consecutiveFailures += 1
            if consecutiveFailures >= failureThreshold { alive = false }
        }
        return before != alive
    }
}
