import Foundation
import StarlingProxy

/// The dashboard's tap view: one live ``TapSession`` per cluster, started when the page first
/// asks for that cluster's requests and stopped when it has not asked for ``idleTimeout`` (a
/// closed page stops its taps: ``sweep()`` runs beside the server); the newest ``keep``
/// requests are kept, numbered, so the page asks only for what it has not seen.
actor DashboardTaps {
    struct Entry: Encodable {
        var seq: Int
        var tapped: TapSession.Tapped
    }

    struct Reply: Encodable {
        var cluster: String
        var events: [Entry]
        /// Why this cluster cannot be tapped (it is tried again on the next poll).
        var error: String?
    }

    static let keep = 200
    static let idleTimeout: Duration = .seconds(30)

    private struct Running {
        /// Which start this is: a cancelled session's late callbacks must not touch a newer one.
        var generation: Int
        var task: Task<Void, Never>
        var events: [Entry] = []
        var next = 1
        var lastPolled = ContinuousClock.now
        var error: String?
    }

    private let contexts: [ResolvedContext]
    private var running: [String: Running] = [:]
    private var generations = 0

    init(contexts: [ResolvedContext]) { self.contexts = contexts }

    /// The requests of `cluster` numbered above `after`, newest last.
    func poll(cluster: String, after: Int) -> Reply? {
        guard let context = contexts.first(where: { $0.clusterName == cluster }) else { return nil }
        stopIdle()
        if running[cluster] == nil || running[cluster]?.error != nil {
            running[cluster]?.task.cancel()
            generations += 1
            running[cluster] = Running(generation: generations, task: start(context, generation: generations))
        }
        running[cluster]?.lastPolled = .now
        let state = running[cluster]
        return Reply(cluster: cluster, events: state?.events.filter { $0.seq > after } ?? [], error: state?.error)
    }

    /// Stops the taps of pages that went away; runs until cancelled.
    func sweep() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.idleTimeout / 2)
            stopIdle()
        }
    }

    private func start(_ context: ResolvedContext, generation: Int) -> Task<Void, Never> {
        let session = TapSession(
            context: context, selection: .init(namespace: nil, workload: nil, filter: .init()), warn: { _ in })
        let cluster = context.clusterName
        return Task {
            do {
                for try await tapped in session.events() { self.append(cluster, generation, tapped) }
            } catch {
                self.failed(cluster, generation, error)
            }
        }
    }

    private func append(_ cluster: String, _ generation: Int, _ tapped: TapSession.Tapped) {
        guard var state = running[cluster], state.generation == generation else { return }
        state.events.append(Entry(seq: state.next, tapped: tapped))
        state.next += 1
        if state.events.count > Self.keep { state.events.removeFirst(state.events.count - Self.keep) }
        running[cluster] = state
    }

    private func failed(_ cluster: String, _ generation: Int, _ error: any Error) {
        guard running[cluster]?.generation == generation else { return }
        running[cluster]?.error = "\(error)"
    }

    private func stopIdle() {
        let now = ContinuousClock.now
        for (cluster, state) in running where now - state.lastPolled > Self.idleTimeout {
            state.task.cancel()
            running[cluster] = nil
        }
    }
}
