import StarlingCore

/// How many retries a service may take: every request deposits `ratio` of a retry, every retry
/// withdraws one, over a sliding window (10 s by default), plus a reserve of
/// `minRetriesPerSecond × window` retries so that services with little traffic can still retry
/// (Finagle's and Linkerd's retry budget).
///
/// The window is a ring of one-second slots; a plain value with the time passed in.
public struct RetryBudget: Sendable, Hashable {
    struct Slot: Sendable, Hashable {
        var epoch: Int
        var deposits: Int
        var withdrawals: Int
    }

    /// The fraction of requests that may be retried.
    public var ratio: Double
    /// Retries allowed per second regardless of traffic.
    public var minRetriesPerSecond: Int
    /// How long a deposit or withdrawal counts.
    public let window: Duration

    private let origin: ContinuousClock.Instant
    private let slotLength: Duration
    private var slots: [Slot]

    /// - Parameters:
    ///   - ratio: the fraction of requests that may be retried (0.2 = 20 %).
    ///   - minRetriesPerSecond: the floor, averaged over the window.
    ///   - window: how long deposits and withdrawals count.
    ///   - slotCount: the window's resolution.
    ///   - now: the current time.
    public init(
        ratio: Double = 0.2, minRetriesPerSecond: Int = 10, window: Duration = .seconds(10), slotCount: Int = 10,
        now: ContinuousClock.Instant
    ) {
        self.ratio = max(0, ratio)
        self.minRetriesPerSecond = max(0, minRetriesPerSecond)
        self.window = window > .zero ? window : .seconds(10)
        let count = max(1, slotCount)
        self.slotLength = self.window / count
        self.origin = now
        self.slots = Array(repeating: Slot(epoch: -1, deposits: 0, withdrawals: 0), count: count)
    }

    /// A request was sent.
    public mutating func deposit(at now: ContinuousClock.Instant) {
        let index = slotIndex(for: now)
        slots[index].deposits += 1
    }

    /// Takes one retry from the budget; false when it is spent.
    public mutating func withdraw(at now: ContinuousClock.Instant) -> Bool {
        guard balance(at: now) >= 1 else { return false }
        let index = slotIndex(for: now)
        slots[index].withdrawals += 1
        return true
    }

    /// The retries available at `now`.
    public func balance(at now: ContinuousClock.Instant) -> Double {
        let current = epoch(of: now)
        var deposits = 0
        var withdrawals = 0
        for slot in slots where slot.epoch > current - slots.count && slot.epoch <= current {
            deposits += slot.deposits
            withdrawals += slot.withdrawals
        }
        let reserve = Double(minRetriesPerSecond) * window.inSeconds
        return Double(deposits) * ratio + reserve - Double(withdrawals)
    }

    private func epoch(of now: ContinuousClock.Instant) -> Int {
        guard now > origin else { return 0 }
        return Int((now - origin) / slotLength)
    }

    /// The ring position of `now`'s slot, cleared if it last held an older epoch.
    private mutating func slotIndex(for now: ContinuousClock.Instant) -> Int {
        let current = epoch(of: now)
        let index = current % slots.count
        if slots[index].epoch != current {
            slots[index] = Slot(epoch: current, deposits: 0, withdrawals: 0)
        }
        return index
    }
}
