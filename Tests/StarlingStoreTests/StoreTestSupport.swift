import Foundation
import StarlingCore
import Synchronization
import Testing

@testable import StarlingStore

/// A fresh directory under the system temporary directory, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("starling-store-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// A store in a fresh temporary directory, closed and removed after `body`.
func withStore<T>(
    configuration: SQLiteResourceStore.Configuration = .init(),
    _ body: (SQLiteResourceStore, String) async throws -> T
) async throws -> T {
    try await withTemporaryDirectory { directory in
        let path = directory + "/data/store.sqlite"
        let store = try SQLiteResourceStore(path: path, configuration: configuration)
        defer { try? store.close() }
        return try await body(store, path)
    }
}

func service(
    _ name: String, namespace: String = "default", labels: [String: String] = [:], port: Int64 = 80
) -> Resource {
    Resource(
        apiVersion: "v1", kind: "Service",
        metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
        body: JSONObject([
            (
                "spec",
                .object(
                    JSONObject([
                        ("selector", .object(JSONObject([("app", .string(name))]))),
                        ("ports", .array([.object(JSONObject([("name", .string("http")), ("port", .int(port))]))])),
                    ])
                )
            )
        ])
    )
}

func namespaceResource(_ name: String) -> Resource {
    Resource(apiVersion: "v1", kind: "Namespace", metadata: ObjectMeta(name: name))
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// The first `count` events of `stream`, or `TimedOut`.
func collect(
    _ stream: AsyncThrowingStream<WatchEvent, any Error>, count: Int, timeout: Duration = .seconds(20)
) async throws -> [WatchEvent] {
    try await withTimeout(timeout, "\(count) watch events") {
        var events: [WatchEvent] = []
        guard count > 0 else { return events }
        for try await event in stream {
            events.append(event)
            if events.count == count { break }
        }
        return events
    }
}

/// The events of `stream` up to and including the one at `version`, or `TimedOut`.
func collect(
    _ stream: AsyncThrowingStream<WatchEvent, any Error>, through version: Int64, timeout: Duration = .seconds(20)
) async throws -> [WatchEvent] {
    try await withTimeout(timeout, "the watch event at version \(version)") {
        var events: [WatchEvent] = []
        for try await event in stream {
            events.append(event)
            if event.version >= version { break }
        }
        return events
    }
}

/// How `stream` ends: the events it delivered and the error it finished with (nil: finished normally).
func drain(
    _ stream: AsyncThrowingStream<WatchEvent, any Error>, timeout: Duration = .seconds(20)
) async throws -> (events: [WatchEvent], error: (any Error)?) {
    try await withTimeout(timeout, "the watch to end") {
        var events: [WatchEvent] = []
        do {
            for try await event in stream { events.append(event) }
            return (events, nil)
        } catch {
            return (events, error)
        }
    }
}

func withTimeout<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}

/// Waits until `condition` holds, polling every millisecond.
func waitUntil(
    _ what: String, timeout: Duration = .seconds(20), _ condition: @escaping @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// A value shared between test tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
