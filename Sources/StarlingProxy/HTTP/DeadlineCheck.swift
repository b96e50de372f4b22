import NIOCore

/// A deadline watched by at most one scheduled check. Arming or disarming only stores the
/// deadline; a check that fires early re-arms itself from the current one. For deadlines that
/// move on every request: scheduling and cancelling a timer per request costs more than the
/// request's own bookkeeping. Lives on one event loop; call `cancel()` when the owner goes away
/// (the expiry action usually holds the channel).
final class DeadlineCheck {
    private let eventLoop: any EventLoop
    private var deadline: NIODeadline?
    private var scheduled: Scheduled<Void>?
    /// When the scheduled check fires.
    private var scheduledAt: NIODeadline?
    private var onExpiry: (() -> Void)?

    init(eventLoop: any EventLoop, onExpiry: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.onExpiry = onExpiry
    }

    /// Due `amount` from now (the event loop's clock).
    func arm(in amount: TimeAmount) {
        let deadline = eventLoop.now + amount
        self.deadline = deadline
        if let scheduledAt, scheduledAt <= deadline { return }
        // None scheduled, or one that would fire too late (an earlier request had a longer timeout).
        scheduled?.cancel()
        schedule(at: deadline)
    }

    func disarm() {
        deadline = nil
    }

    func cancel() {
        scheduled?.cancel()
        scheduled = nil
        scheduledAt = nil
        deadline = nil
        onExpiry = nil
    }

    private func schedule(at when: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        scheduledAt = when
        scheduled = eventLoop.scheduleTask(deadline: when) {
            let check = loopBound.value
            check.scheduled = nil
            check.scheduledAt = nil
            guard let due = check.deadline else { return }
            if check.eventLoop.now >= due {
                check.deadline = nil
                check.onExpiry?()
            } else {
                check.schedule(at: due)
            }
        }
    }
}

@available(*, unavailable)
extension DeadlineCheck: Sendable {}
