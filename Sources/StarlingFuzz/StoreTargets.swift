import Foundation
import GRDB
import StarlingCore
import StarlingStore

/// A resource apply through the SQLite store: fuzzed bytes decoded as resources (validated or
/// not) and applied. A batch is all or nothing: after a failure the version and every key of the
/// batch are as before; after a success the version grew by the number of changes and each key
/// reads back as the apply returned it.
enum StoreTargets {
    /// The name of the resource that makes a batch fail after its rows are written: a trigger
    /// in the fuzzer's own store file refuses its history row, the last write of an apply.
    static let poisonName = "fuzz-poison"

    /// One store per process, in `$TMPDIR` (tests/fuzz/run.sh gives a scratch directory).
    static let store: SQLiteResourceStore = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("starling-fuzz-store-\(getpid())")
        let path = directory.appendingPathComponent("store.sqlite").path
        do {
            let store = try SQLiteResourceStore(path: path, configuration: .init(maxRetainedEvents: 100))
            let queue = try DatabaseQueue(path: path)
            try queue.write { db in
                try db.execute(
                    sql: """
                        CREATE TRIGGER fuzz_poison BEFORE INSERT ON events WHEN NEW.name = '\(poisonName)'
                        BEGIN SELECT RAISE(ABORT, 'fuzz: injected failure'); END
                        """)
            }
            try queue.close()
            return store
        } catch {
            setupFailed("opening the fuzzer's store at \(path) failed: \(error)")
        }
    }()

    static func apply(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let flags = input.byte()
        let text = input.rest()
        var batch: [Resource]
        if let decoded = try? ResourceDecoder.decode(text, source: "fuzz") {
            batch = decoded
        } else {
            // Unvalidated resources too: the store must refuse what it cannot key, not trust the decoder.
            let documents = (try? ResourceDecoder.parseDocuments(text, source: "fuzz")) ?? []
            batch = documents.compactMap { try? Resource(json: $0) }
        }
        guard !batch.isEmpty else { return }
        batch = Array(batch.prefix(16))
        if flags & 1 != 0, var poison = batch.first {
            poison.metadata.name = poisonName
            if !(ResourceKind.named(poison.kind)?.namespaced ?? true) { poison.metadata.namespace = nil }
            batch.append(poison)
        }
        let deleteAfter = flags & 2 != 0
        let batchToApply = batch
        blocking { await applyAndCheck(batchToApply, deleteAfter: deleteAfter) }
    }

    static func key(_ resource: Resource) -> ResourceKey {
        ResourceKey(
            kind: resource.kind, namespace: resource.metadata.namespace.flatMap { $0.isEmpty ? nil : $0 },
            name: resource.metadata.name)
    }

    static func applyAndCheck(_ batch: [Resource], deleteAfter: Bool) async {
        do {
            let keys = Set(batch.map(key))
            let version = try await store.currentVersion()
            var before: [ResourceKey: Resource?] = [:]
            for key in keys { before.updateValue(try await store.get(key), forKey: key) }
            let results: [ApplyResult]
            do {
                results = try await store.apply(batch)
            } catch {
                // Nothing half-written.
                let after = try await store.currentVersion()
                check(after == version, "a failed apply moved the version from \(version) to \(after): \(error)")
                for key in keys {
                    let now = try await store.get(key)
                    check(now == before[key]!, "a failed apply changed \(key): \(error)")
                }
                return
            }
            check(!batch.contains { $0.metadata.name == poisonName }, "a batch with the poisoned resource was stored")
            check(results.count == batch.count, "\(batch.count) resources gave \(results.count) results")
            let changes = results.filter { $0.outcome != .unchanged }.count
            let after = try await store.currentVersion()
            check(after == version + Int64(changes), "\(changes) changes moved the version from \(version) to \(after)")
            var last: [ResourceKey: Resource] = [:]
            for result in results { last[key(result.resource)] = result.resource }
            for (key, resource) in last {
                let stored = try await store.get(key)
                check(stored == resource, "\(key) reads back differently from what apply returned")
            }
            // Applying the same batch again changes nothing (when no key repeats within it).
            if last.count == batch.count {
                let again = try await store.apply(batch)
                check(again.allSatisfy { $0.outcome == .unchanged }, "applying the same batch twice changed something")
                let afterAgain = try await store.currentVersion()
                check(afterAgain == after, "an unchanged apply moved the version")
            }
            if deleteAfter {
                var expected = after
                for key in last.keys {
                    if try await store.delete(key) != nil { expected += 1 }
                    let left = try await store.get(key)
                    check(left == nil, "\(key) is still there after delete")
                }
                let afterDelete = try await store.currentVersion()
                check(afterDelete == expected, "deletes moved the version to \(afterDelete), expected \(expected)")
            }
        } catch {
            check(false, "the store failed outside an apply: \(error)")
        }
    }
}
