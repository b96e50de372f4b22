/// What the frontend has seen from podinfo: a count per cluster and instance, and the latest
/// answers. Errors count too, under the cluster `error`, so a broken path shows on the page
/// instead of silently thinning the tally.
struct FrontendTally: Sendable {
    /// One call to the upstream.
    struct Answer: Sendable, Equatable {
        /// 1 for the first call.
        var sequence: Int
        /// Seconds since the frontend started.
        var elapsed: Double
        var cluster: String
        var instance: String
        var message: String?
        /// The workload identity podinfo saw (set by the mesh), if any.
        var client: String?
        /// The HTTP status, nil when no response arrived.
        var status: Int?
        /// Why the call failed, nil on success.
        var error: String?
        var latencyMilliseconds: Double

        var isError: Bool { error != nil }
    }

    struct Key: Hashable, Comparable {
        var cluster: String
        var instance: String
        static func < (a: Key, b: Key) -> Bool { (a.cluster, a.instance) < (b.cluster, b.instance) }
    }

    /// The cluster name errors are counted under.
    static let errorCluster = "error"

    let recentLimit: Int
    private(set) var total = 0
    private(set) var errors = 0
    private(set) var counts: [Key: Int] = [:]
    /// Newest first.
    private(set) var recent: [Answer] = []

    init(recentLimit: Int = 20) {
        self.recentLimit = max(1, recentLimit)
    }

    var nextSequence: Int { total + 1 }

    mutating func record(_ answer: Answer) {
        total += 1
        if answer.isError { errors += 1 }
        counts[Key(cluster: answer.cluster, instance: answer.instance), default: 0] += 1
        recent.insert(answer, at: 0)
        if recent.count > recentLimit { recent.removeLast(recent.count - recentLimit) }
    }

    /// The state as JSON for `GET /api/state`.
    func json(upstream: String, via: String) -> String {
        let rows = counts.keys.sorted().map { key in
            let count = counts[key] ?? 0
            return DemoJSON.object([
                ("cluster", DemoJSON.string(key.cluster)),
                ("instance", DemoJSON.string(key.instance)),
                ("count", "\(count)"),
                ("percent", Self.number(total == 0 ? 0 : Double(count) * 100 / Double(total))),
            ])
        }
        return DemoJSON.object([
            ("upstream", DemoJSON.string(upstream)),
            ("via", DemoJSON.string(via)),
            ("total", "\(total)"),
            ("errors", "\(errors)"),
            ("last", recent.first.map(Self.json) ?? "null"),
            ("tally", DemoJSON.array(rows)),
            ("recent", DemoJSON.array(recent.map(Self.json))),
        ])
    }

    private static func json(_ answer: Answer) -> String {
        DemoJSON.object([
            ("sequence", "\(answer.sequence)"),
            ("elapsed", number(answer.elapsed)),
            ("cluster", DemoJSON.string(answer.cluster)),
            ("instance", DemoJSON.string(answer.instance)),
            ("message", DemoJSON.optional(answer.message)),
            ("client", DemoJSON.optional(answer.client)),
            ("status", answer.status.map { "\($0)" } ?? "null"),
            ("error", DemoJSON.optional(answer.error)),
            ("latencyMs", number(answer.latencyMilliseconds)),
        ])
    }

    /// A finite number with one decimal (JSON has no NaN or infinity).
    private static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let tenths = (value * 10).rounded()
        guard abs(tenths) < 1e15 else { return "0" }
        let whole = Int(tenths)
        let sign = whole < 0 ? "-" : ""
        return "\(sign)\(abs(whole) / 10).\(abs(whole) % 10)"
    }
}
