import Logging
@testable import StarlingControlPlane
import Testing

/// A replica whose clock is off the database's signs nothing: the certificates would carry its
/// time, and be "not valid yet" (or expired early) everywhere else.
struct ReplicaClockTests {
    @Test func aReplicaSignsUntilItsClockIsOffByMoreThanTheLimit() {
        let clock = ReplicaClock(limit: 30, logger: Logger(label: "test"))
        #expect(clock.refusal == nil, "not measured yet: a controller on SQLite has no database clock")
        clock.record(0.2)
        #expect(clock.refusal == nil)
        clock.record(-29)
        #expect(clock.refusal == nil)
        clock.record(600)
        let refusal = try? #require(clock.refusal)
        #expect(refusal?.contains("10m0s ahead of the database's") == true, "got \(refusal ?? "nil")")
        clock.record(-45)
        #expect(clock.refusal?.contains("45.0s behind") == true)
        clock.record(1)
        #expect(clock.refusal == nil, "synced again: it signs again")
    }

    @Test func aReplicaOfASharedStoreSignsOnlyOnceItHasMeasuredItsClock() {
        let clock = ReplicaClock(limit: 30, measurementRequired: true, logger: Logger(label: "test"))
        #expect(clock.refusal?.contains("has not compared its clock") == true)
        clock.record(0.1)
        #expect(clock.refusal == nil)
    }

    @Test func skewsAreWrittenAsOperatorsReadThem() {
        #expect(ReplicaClock.describe(599.4) == "9m59s ahead of")
        #expect(ReplicaClock.describe(-2.5) == "2.5s behind")
        #expect(ReplicaClock.magnitude(0.004) == "0.004s")
    }
}
