import Testing

@testable import StarlingProxy

struct RetryBudgetTests {
    @Test func allowsTheRatioOfRequestsAndNoMore() {
        let start = ContinuousClock.now
        var budget = RetryBudget(ratio: 0.2, minRetriesPerSecond: 0, now: start)
        for _ in 0..<100 { budget.deposit(at: start) }
        var allowed = 0
        while budget.withdraw(at: start) { allowed += 1 }
        #expect(allowed == 20)
        let refused = budget.withdraw(at: start)
        #expect(!refused)
    }

    @Test func floorAllowsRetriesWithoutTraffic() {
        let start = ContinuousClock.now
        var budget = RetryBudget(ratio: 0.2, minRetriesPerSecond: 1, window: .seconds(10), now: start)
        var allowed = 0
        while budget.withdraw(at: start) { allowed += 1 }
        #expect(allowed == 10)
        for _ in 0..<50 { budget.deposit(at: start) }
        while budget.withdraw(at: start) { allowed += 1 }
        #expect(allowed == 20)
    }

    @Test func depositsAndWithdrawalsExpireWithTheWindow() {
        let start = ContinuousClock.now
        var budget = RetryBudget(ratio: 0.5, minRetriesPerSecond: 0, window: .seconds(10), now: start)
        for _ in 0..<10 { budget.deposit(at: start) }
        #expect(budget.balance(at: start + .seconds(9)) == 5)
        #expect(budget.balance(at: start + .seconds(11)) == 0)
        let expired = budget.withdraw(at: start + .seconds(11))
        #expect(!expired)
        // Withdrawals leave the window too, so the floor refills.
        var floor = RetryBudget(ratio: 0, minRetriesPerSecond: 1, window: .seconds(10), now: start)
        while floor.withdraw(at: start) {}
        let stillSpent = floor.withdraw(at: start + .seconds(5))
        #expect(!stillSpent)
        let refilled = floor.withdraw(at: start + .seconds(10))
        #expect(refilled)
    }
}
