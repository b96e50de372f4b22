/// Whether a linked cluster's gateway is alive: alive from its first successful probe, dead after
/// `failureThreshold` consecutive failed probes, alive again after one success. A pure value; the
/// probe worker drives it.
public struct GatewayHealth: Sendable, Equatable {
    public var failureThreshold: Int
    public private(set) var alive: Bool
    public private(set) var consecutiveFailures = 0

    /// A new gateway is not alive until a probe says so: its mirrors get endpoints only once the
    /// gateway has answered, so a split applied before the remote gateway listens sends nothing
    /// there (the first probe goes out as the link starts).
    public init(failureThreshold: Int = 3, alive: Bool = false) {
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
