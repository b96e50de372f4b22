import Dispatch

/// Runs async work to completion from libFuzzer's synchronous callback (on the main thread,
/// which no task needs).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        box.value = await body()
        done.signal()
    }
    done.wait()
    return box.value!
}

/// Written by the task before it signals and read after the wait: the semaphore orders the two.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    var value: T?
}
