#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// How `starling run` stops a workload that serves, on SIGTERM: first callers stop routing to it
/// (the workload is deregistered, and the callers' proxies hear of it from the controller within
/// milliseconds), then, `delay` later, the command gets the signal and ends what it has in
/// flight. Passing the signal at once, as before, left a window in which callers still picked
/// the workload while its application had already gone: their requests got 502 connect-failed
/// from its proxy. A second signal goes to the command at once. SIGINT goes through at once: a
/// Ctrl-C in a terminal reaches the command itself too (one process group), and passing it again
/// a second later would look like a second, impatient Ctrl-C.
final class RunShutdown: Sendable {
    private enum State {
        case running
        /// The first signal, held until routing has stopped.
        case stopping(Int32, ChildProcess)
        case forwarding
    }

    let delay: Duration
    /// Yields once, at the first signal that is held.
    let requests: AsyncStream<Void>
    private let requested: AsyncStream<Void>.Continuation
    private let state = Mutex<State>(.running)

    init(delay: Duration) {
        self.delay = delay
        (requests, requested) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The signal handler given to ``ChildProcess/start(_:environment:onSignal:)``.
    func handle(_ child: ChildProcess, _ signo: Int32) {
        let hold: Bool = state.withLock { state in
            switch state {
            case .running where delay > .zero && signo == SIGTERM:
                state = .stopping(signo, child)
                return true
            case .running, .stopping, .forwarding:
                state = .forwarding
                return false
            }
        }
        if hold { requested.yield() } else { child.send(signo) }
    }

    /// Passes the held signal on, unless a second signal went through already.
    func forwardHeld() {
        let held: (Int32, ChildProcess)? = state.withLock { state in
            guard case .stopping(let signo, let child) = state else { return nil }
            state = .forwarding
            return (signo, child)
        }
        if let (signo, child) = held { child.send(signo) }
    }
}
