import NIOCore

/// Runs tasks on a NIO event loop (a Swift task executor preference).
///
/// The task-served HTTP/2 servers (the outbound's h2c front end, the gateway) run a task per
/// stream, and every frame read or written crosses between the task and the connection's event
/// loop. On Swift's global executor each crossing was a switch between threads: the h2c front
/// end spent ~400 µs of CPU per request, a quarter of it switching, and reached 2.6k requests/s
/// on one connection. With the tasks preferring the connection's own loop, a crossing is a job
/// on the same thread (docs/data-plane.md, "Stream tasks on the connection's loop").
///
/// Only code that never blocks may run here; the stream tasks only await.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
