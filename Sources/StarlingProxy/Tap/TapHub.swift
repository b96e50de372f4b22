import Metrics
import Synchronization

/// The taps open on one proxy. The request paths call ``publish(_:)`` with a closure that makes
/// the event: while no tap is open that is one atomic load per request and nothing is built.
/// Each tap has a bounded buffer; a tap that reads too slowly loses its oldest events rather than
/// slowing the proxy (`starling_proxy_tap_events_dropped_total` counts them).
public final class TapHub: Sendable {
    /// Events a slow tap may fall behind by before the oldest are dropped.
    public static let bufferSize = 1024
    /// Taps one proxy serves at once; more are refused.
    public static let maximumTaps = 16

    private struct Tap {
        var filter: TapFilter
        var continuation: AsyncStream<TapEvent>.Continuation
    }

    private let open = Atomic<Int>(0)
    /// `starling_proxy_tap_streams`: the taps open now (who is watching shows in the metrics).
    private let openGauge = Gauge(label: "starling_proxy_tap_streams")
    private let droppedEvents = Counter(label: "starling_proxy_tap_events_dropped_total")
    private let taps = Mutex<(next: Int, taps: [Int: Tap])>((0, [:]))

    public init() {}

    public var isActive: Bool { open.load(ordering: .relaxed) > 0 }

    /// Sends the event `make` builds to every open tap whose filter it passes.
    @inline(__always)
    public func publish(_ make: () -> TapEvent) {
        guard isActive else { return }
        let event = make()
        let receivers = taps.withLock { state in state.taps.values.filter { $0.filter.matches(event) }.map(\.continuation) }
        for continuation in receivers {
            if case .dropped = continuation.yield(event) { droppedEvents.increment() }
        }
    }

    /// Opens a tap; it closes when its stream's consumer stops. Nil when ``maximumTaps`` are open.
    public func subscribe(_ filter: TapFilter) -> AsyncStream<TapEvent>? {
        let (stream, continuation) = AsyncStream.makeStream(of: TapEvent.self, bufferingPolicy: .bufferingNewest(Self.bufferSize))
        let id: Int? = taps.withLock { state in
            guard state.taps.count < Self.maximumTaps else { return nil }
            state.next += 1
            state.taps[state.next] = Tap(filter: filter, continuation: continuation)
            return state.next
        }
        guard let id else { return nil }
        openGauge.record(open.add(1, ordering: .relaxed).newValue)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let removed = self.taps.withLock { $0.taps.removeValue(forKey: id) != nil }
            if removed { self.openGauge.record(self.open.subtract(1, ordering: .relaxed).newValue) }
        }
        return stream
    }
}
