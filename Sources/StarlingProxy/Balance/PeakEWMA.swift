import Foundation
import StarlingCore

/// A peak-sensitive, exponentially weighted moving average of an endpoint's round-trip time,
/// combined with its number of requests in flight into a load cost (Finagle's and Linkerd's
/// "peak EWMA").
///
/// A slower observation replaces the estimate at once (the peak), so a slowing endpoint is
/// avoided immediately; faster observations pull the estimate down gradually with the decay
/// time. Between observations the estimate decays towards zero, so an endpoint that was slow
/// once and then left alone becomes attractive again and gets re-measured. Time is passed in,
/// never read, so tests control it.
public struct PeakEWMA: Sendable, Hashable {
    /// How fast old observations stop mattering (the EWMA's time constant).
    public var decay: Duration
    /// The estimate, in seconds, as of `updatedAt`.
    private var rttSeconds: Double
    private var updatedAt: ContinuousClock.Instant
    /// Requests sent to the endpoint and not completed yet.
    public private(set) var pending: Int

    /// The smallest RTT estimate used in costs, so that an idle endpoint whose estimate decayed to
    /// nothing still pays for the requests it has in flight.
    static let floorSeconds = 0.000_1

    /// - Parameters:
    ///   - initialRTT: the estimate before the first observation (Linkerd's default RTT).
    ///   - decay: the time constant of the average.
    ///   - now: the current time.
    public init(initialRTT: Duration = .milliseconds(30), decay: Duration = .seconds(10), now: ContinuousClock.Instant) {
        self.decay = decay
        self.rttSeconds = initialRTT.inSeconds
        self.updatedAt = now
        self.pending = 0
    }

    /// The RTT estimate at `now`, in seconds.
    public func estimate(at now: ContinuousClock.Instant) -> Double {
        rttSeconds * decayWeight(now)
    }

    /// The load cost at `now`: the RTT estimate times (pending requests + 1). Lower is better.
    public func cost(at now: ContinuousClock.Instant) -> Double {
        max(estimate(at: now), Self.floorSeconds) * Double(pending + 1)
    }

    /// A request was sent to the endpoint.
    public mutating func start() {
        pending += 1
    }

    /// A request that was `start`ed ended; `rtt` is its latency if it says anything about the
    /// endpoint. Failures pass `onlyIfSlower` so that fast errors never make an endpoint look
    /// better than it is.
    public mutating func finish(rtt: Duration?, onlyIfSlower: Bool = false, at now: ContinuousClock.Instant) {
        pending = max(0, pending - 1)
        guard let rtt else { return }
        observe(rtt, onlyIfSlower: onlyIfSlower, at: now)
    }

    /// Folds one RTT observation into the estimate.
    public mutating func observe(_ rtt: Duration, onlyIfSlower: Bool = false, at now: ContinuousClock.Instant) {
        let sample = max(0, rtt.inSeconds)
        let weight = decayWeight(now)
        let decayed = rttSeconds * weight
        if sample > decayed {
            rttSeconds = sample
        } else if onlyIfSlower {
            rttSeconds = decayed
        } else {
            rttSeconds = decayed + sample * (1 - weight)
        }
        if now > updatedAt { updatedAt = now }
    }

    private func decayWeight(_ now: ContinuousClock.Instant) -> Double {
        guard now > updatedAt else { return 1 }
        let decaySeconds = decay.inSeconds
        guard decaySeconds > 0 else { return 0 }
        return exp(-(now - updatedAt).inSeconds / decaySeconds)
    }
}
