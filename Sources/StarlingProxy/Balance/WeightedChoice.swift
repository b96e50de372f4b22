/// Chooses one of several weighted candidates at random, in proportion to the weights of the
/// candidates that are available; an unavailable candidate's share goes to the others in
/// proportion to theirs. When every available candidate has weight zero (say a 100/0 split whose
/// first backend is gone), they share the traffic evenly: failing over beats failing.
public enum WeightedChoice {
    /// The index of the chosen candidate, or nil when none is available.
    /// - Parameters:
    ///   - weights: one weight per candidate.
    ///   - isAvailable: whether the candidate at an index may be chosen.
    public static func choose(
        weights: some Collection<UInt64>, isAvailable: (Int) -> Bool, using random: inout some RandomNumberGenerator
    ) -> Int? {
        var total: UInt64 = 0
        var available = 0
        for (index, weight) in weights.enumerated() where isAvailable(index) {
            total = total.addingReportingOverflow(weight).overflow ? .max : total + weight
            available += 1
        }
        guard available > 0 else { return nil }
        if total == 0 {
            var target = Int.random(in: 0..<available, using: &random)
            for index in 0..<weights.count where isAvailable(index) {
                if target == 0 { return index }
                target -= 1
            }
            return nil
        }
        var target = UInt64.random(in: 0..<total, using: &random)
        var lastAvailable: Int?
        for (index, weight) in weights.enumerated() where isAvailable(index) {
            if target < weight { return index }
            target -= weight
            lastAvailable = index
        }
        // Only reached when the total saturated; the remainder belongs to the last candidate.
        return lastAvailable
    }
}
