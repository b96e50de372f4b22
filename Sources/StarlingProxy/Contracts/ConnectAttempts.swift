public import Logging

/// The connect attempts of one request (or one opaque connection): a connect that failed before
/// anything was sent is tried again on another endpoint — of the same backend, or of another
/// backend of the split when the failed one has no other — as long as the request's timeout
/// allows: ``maximum`` attempts, and one more per backoff taken. When no other endpoint is left
/// (a service with one endpoint, a lone gateway), the failed ones are tried again after a backoff
/// (``backoffs``: 0.1, 0.2, 0.4, 0.8, 1.5 and 2.5 s, 5.5 s in all, within the request's
/// timeout), provided it could not be reached at all (``ProxyError/transient``): a refused
/// connect is most often a process restarting, back within a second or two, and a caller is
/// better served by a slower answer than by a 502. Linkerd's balancer likewise holds requests
/// (up to 3 s) while no endpoint is ready; a controller restarted with its hosted gateway took up
/// to 3 s to listen again under CI's load, hence the longer wait. An endpoint that is really gone
/// is removed by discovery (a dead gateway's mirror endpoints once its probes fail, a workload
/// once deregistered).
///
/// Nothing reached the failed endpoint, so the new attempt is safe whatever the method or body,
/// and adds no load to any application: it is not drawn from the retry budget (which guards
/// destinations against retried work). The failure still counts against the endpoint in the
/// balancer, so an endpoint that keeps refusing is ejected, and every request after that goes
/// straight to the others.
public struct ConnectAttempts: Sendable {
    /// Attempts on distinct endpoints per request, the first included.
    public static let maximum = 3
    /// The waits before trying the failed endpoints again when no other is left.
    public static let backoffs: [Duration] = [
        .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1500),
        .milliseconds(2500),
    ]

    /// Endpoints this request could not connect to, for the next pick to avoid.
    public private(set) var avoided: [Endpoint] = []
    /// Connects that failed so far.
    public private(set) var failures = 0
    /// Backoffs waited so far.
    public private(set) var backoffsTaken = 0
    /// When the request's time is up (its start plus its first pick's timeout).
    public let deadline: ContinuousClock.Instant

    public init(started: ContinuousClock.Instant, timeout: Duration) {
        deadline = started + timeout
    }

    /// Records a failed connect to `endpoint`; true when another attempt may be made now.
    public mutating func failed(_ endpoint: Endpoint, now: ContinuousClock.Instant = .now) -> Bool {
        failures += 1
        if !avoided.contains(endpoint) { avoided.append(endpoint) }
        // One attempt more per backoff taken: a backoff is taken only when no other endpoint is
        // left, so many endpoints that all refuse still get ``maximum`` attempts.
        return now < deadline && failures < Self.maximum + backoffsTaken
    }

    /// The re-pick found no endpoint left to try: when another attempt may still be made, and
    /// its backoff ends before the request's deadline, returns the wait and forgets the avoided
    /// endpoints (the next pick may choose a failed one again); nil when the request is to be
    /// answered with its last failure.
    public mutating func retryAfterBackoff(now: ContinuousClock.Instant = .now) -> Duration? {
        guard backoffsTaken < Self.backoffs.count else { return nil }
        let wait = Self.backoffs[backoffsTaken]
        // The attempt after it needs time to connect too.
        guard now + wait + .milliseconds(100) < deadline else { return nil }
        backoffsTaken += 1
        avoided.removeAll()
        return wait
    }

    /// Reports the failed connect of `pick` (started at `started`) to the balancer and records it
    /// in `attempts`, made at the request's first failure; true when another attempt may be made.
    public static func record(
        _ attempts: inout ConnectAttempts?, failedConnectOf pick: Pick, started: ContinuousClock.Instant,
        now: ContinuousClock.Instant = .now
    ) -> Bool {
        pick.complete(.failure(latency: now - started))
        var recorded = attempts ?? ConnectAttempts(started: started, timeout: pick.timeout)
        let again = recorded.failed(pick.endpoint, now: now)
        attempts = recorded
        return again
    }

    /// The time left for the next attempt's connect.
    public func remaining(now: ContinuousClock.Instant = .now) -> Duration {
        max(deadline - now, .zero)
    }
}

/// Why ``EndpointPicker/connect(_:logger:_:)`` found no connection: the last error, and the pick
/// it belongs to (nil when picking itself failed, as when no endpoint was left to try).
public struct PickFailure: Error {
    public var error: ProxyError
    public var pick: Pick?
}

extension EndpointPicker {
    /// Picks an endpoint for `authority` and connects to it with `connect` (given the time left),
    /// trying other endpoints as ``ConnectAttempts`` allows. Each failed connect is reported to
    /// the balancer; the returned pick's outcome is the caller's to report.
    public func connect<Upstream>(
        _ authority: String, logger: Logger,
        _ connect: (Pick, _ timeout: Duration) async throws(ProxyError) -> Upstream
    ) async throws(PickFailure) -> (pick: Pick, upstream: Upstream, started: ContinuousClock.Instant) {
        var attempts: ConnectAttempts?
        var connectError: ProxyError?
        while true {
            let pick: Pick
            do throws(ProxyError) {
                pick = try await self.pick(authority, avoiding: attempts?.avoided ?? [])
            } catch {
                // A re-pick that found nothing else to try after a refused connect waits and tries
                // the failed endpoints again, while the backoffs allow (a peer that failed
                // verification is not waited for); then it answers with the connect failure.
                if let connectError, connectError.transient, let wait = attempts?.retryAfterBackoff() {
                    logger.debug(
                        "no other endpoint; connecting again after a backoff",
                        metadata: ["authority": "\(authority)", "backoff": "\(wait)", "error": "\(connectError)"])
                    do { try await Task.sleep(for: wait) } catch { throw PickFailure(error: connectError, pick: nil) }
                    continue
                }
                throw PickFailure(error: connectError ?? error, pick: nil)
            }
            let started = ContinuousClock.now
            do throws(ProxyError) {
                let upstream = try await connect(pick, attempts?.remaining(now: started) ?? pick.timeout)
                return (pick, upstream, started)
            } catch {
                connectError = error
                guard ConnectAttempts.record(&attempts, failedConnectOf: pick, started: started) else {
                    throw PickFailure(error: error, pick: pick)
                }
                logger.debug(
                    "connecting elsewhere after a connect failure",
                    metadata: ["authority": "\(authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
            }
        }
    }
}
