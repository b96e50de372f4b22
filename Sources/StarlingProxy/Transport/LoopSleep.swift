import NIOCore

/// Sleeps for `duration` on `eventLoop`'s timer; cancelling the task removes the timer at once.
///
/// `Task.sleep` leaves a cancelled sleep's timer queued until its deadline, holding about 1 KiB.
/// The exchange watchdog sleeps once per request and is cancelled when the response ends: with
/// `Task.sleep`, 14k requests/s through the h2c front end kept some 250 MB of such timers alive
/// (docs/data-plane.md, "Timers per request").
///
/// - Throws: `CancellationError` when the task is cancelled first.
func sleep(for duration: Duration, on eventLoop: any EventLoop) async throws {
    let timer = eventLoop.scheduleTask(in: TimeAmount(duration)) {}
    do {
        try await withTaskCancellationHandler {
            try await timer.futureResult.get()
        } onCancel: {
            timer.cancel()
        }
    } catch {
        throw CancellationError()
    }
}
