import Foundation
import StarlingProxy

/// The dashboard's tap view: one live ``TapSession`` per cluster, started when the page first
/// asks for that cluster's requests and stopped when it has not asked for ``idleTimeout``; the
/// newest ``keep`` requests are kept, numbered, so the page asks only for what it has not seen.
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
        var task: Task<Void, Never>
        var events: [Entry] = []
        var next = 1
        var lastPolled = ContinuousClock.now
        var error: String?
    }

    private let contexts: [ResolvedContext]
    private var running: [String: Running] = [:]

    init(contexts: [ResolvedContext]) { self.contexts = contexts }

    /// The requests of `cluster` numbered above `after`, newest last.
    func poll(cluster: String, after: Int) -> Reply? {
        guard let context = contexts.first(where: { $0.clusterName == cluster }) else { return nil }
        stopIdle()
        if running[cluster] == nil || running[cluster]?.error != nil {
            running[cluster]?.task.cancel()
            running[cluster] = Running(task: start(context))
        }
        running[cluster]?.lastPolled = .now
        let state = running[cluster]
        return Reply(cluster: cluster, events: state?.events.filter { $0.seq > after } ?? [], error: state?.error)
    }

    private func start(_ context: ResolvedContext) -> Task<Void, Never> {
        let session = TapSession(
            context: context, selection: .init(namespace: nil, workload: nil, filter: .init()), warn: { _ in })
        let cluster = context.clusterName
        return Task {
            do {
                for try await tapped in session.events() { self.append(cluster, tapped) }
            } catch {
                self.failed(cluster, error)
            }
        }
    }

    private func append(_ cluster: String, _ tapped: TapSession.Tapped) {
        guard var state = running[cluster] else { return }
        state.events.append(Entry(seq: state.next, tapped: tapped))
        state.next += 1
        if state.events.count > Self.keep { state.events.removeFirst(state.events.count - Self.keep) }
        running[cluster] = state
    }

    private func failed(_ cluster: String, _ error: any Error) {
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
