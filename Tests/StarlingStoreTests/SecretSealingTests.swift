import Crypto
import Foundation
import PostgresNIO
import StarlingCore
import Testing

@testable import StarlingStore

/// Secrets at rest: sealed with AES-GCM under the secrets key in both stores, refused under another key.
struct SecretSealingTests {
    static let plaintext = "issuer-key-material-3f9a1c"

    static func secret(_ name: String = "issuer") -> Resource {
        Resource(
            apiVersion: "v1", kind: "Secret", metadata: ObjectMeta(name: name, namespace: "starling"),
            body: JSONObject([("data", .object(JSONObject([("tls.key", .string(plaintext))])))]))
    }

    static func sealer() throws -> SecretSealer { try SecretSealer(key: SymmetricKey(size: .bits256)) }

    /// Every byte of the SQLite store's files (database, WAL).
    static func rawBytes(ofStoreAt path: String) throws -> Data {
        var all = Data()
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            all.append(try Data(contentsOf: URL(fileURLWithPath: path + suffix)))
        }
        return all
    }

    /// Every stored resource and change of the PostgreSQL store at `url`, as one text.
    static func storedJSON(_ url: PostgresStoreURL) async throws -> String {
        try await PostgresTestServer.admin(url) { client in
            var text = ""
            for try await (json) in try await client.query(
                "SELECT json FROM starling_resources UNION ALL SELECT json FROM starling_events"
            ).decode(String.self) {
                text += json
            }
            return text
        }
    }

    @Test func sqliteKeepsSecretsSealedAndRefusesAnotherKey() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.sqlite"
            let key = try Self.sealer()
            do {
                let store = try SQLiteResourceStore(path: path, sealer: key)
                defer { try? store.close() }
                _ = try await store.apply([Self.secret(), service("web")])
                #expect(try await store.get(Self.secret().key)?.body == Self.secret().body)
                let events = try await collect(store.watch(kinds: ["Secret"], fromVersion: 0), count: 1)
                #expect(events.first?.resource.body == Self.secret().body)
                _ = try await store.delete(Self.secret().key)
            }
            let raw = try Self.rawBytes(ofStoreAt: path)
            #expect(!raw.isEmpty)
            #expect(raw.range(of: Data(Self.plaintext.utf8)) == nil, "the secret's value is in the SQLite files in plain text")
            #expect(raw.range(of: Data("sealed:v1:".utf8)) != nil)

            let other = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: path, sealer: try Self.sealer()) }
            #expect(other?.code == .misconfigured)
            #expect(other?.message.contains("another secrets key") == true)
            let none = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: path) }
            #expect(none?.code == .misconfigured)
            let again = try SQLiteResourceStore(path: path, sealer: key)
            #expect(try await again.list(kind: "Service", namespace: nil, selector: nil).count == 1)
            try again.close()
        }
    }

    /// A Secret stored in plain text (before the store had a key) is sealed, with its history,
    /// when the store opens with a key; nothing of it stays in the files.
    @Test func sqliteSealsPlainSecretsWhenItOpensWithAKey() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.sqlite"
            do {
                let plain = try SQLiteResourceStore(path: path)
                defer { try? plain.close() }
                _ = try await plain.apply([Self.secret(), service("web")])
                _ = try await plain.apply([Self.secret().withLabel("rotated", "yes")])
            }
            #expect(try Self.rawBytes(ofStoreAt: path).range(of: Data(Self.plaintext.utf8)) != nil)
            let key = try Self.sealer()
            do {
                let sealed = try SQLiteResourceStore(path: path, sealer: key)
                defer { try? sealed.close() }
                let secret = try #require(try await sealed.get(Self.secret().key))
                #expect(secret.metadata.labels["rotated"] == "yes")
                #expect(secret.body == Self.secret().body)
                let history = try await collect(sealed.watch(kinds: ["Secret"], fromVersion: 0), count: 2)
                #expect(history.map(\.resource.body) == [Self.secret().body, Self.secret().body])
            }
            let raw = try Self.rawBytes(ofStoreAt: path)
            #expect(raw.range(of: Data(Self.plaintext.utf8)) == nil, "a plain secret stayed in the SQLite files")
            #expect(raw.range(of: Data("sealed:v1:".utf8)) != nil)
        }
    }

    @Test func aSealedSecretMovedToAnotherNameDoesNotOpen() throws {
        let form = StoredForm(store: "test", sealer: try Self.sealer())
        let sealed = try form.text(of: Self.secret("a"))
        #expect(sealed.hasPrefix("sealed:v1:"))
        #expect(try form.resource(from: sealed, key: Self.secret("a").key).body == Self.secret().body)
        let moved = #expect(throws: StoreError.self) { try form.resource(from: sealed, key: Self.secret("b").key) }
        #expect(moved?.code == .misconfigured)
        // Other kinds stay plain JSON (they are listed and selected by their labels).
        #expect(try form.text(of: service("web")).hasPrefix("{"))
    }

    @Test(.enabled(if: PostgresTestServer.available, PostgresTestServer.skipReason))
    func postgresKeepsSecretsSealedAndRefusesAReplicaWithAnotherKey() async throws {
        try await PostgresTestServer.withDatabase { url in
            let key = try Self.sealer()
            try await withPostgresStore(url, configuration: .init(pollInterval: .milliseconds(200)), sealer: key) { store in
                _ = try await store.apply([Self.secret()])
                #expect(try await store.get(Self.secret().key)?.body == Self.secret().body)
                _ = try await store.apply([Self.secret().withLabel("rotated", "yes")])
            }
            let dump = try await Self.storedJSON(url)
            #expect(dump.contains("sealed:v1:"))
            #expect(!dump.contains(Self.plaintext), "the secret's value is in PostgreSQL in plain text")

            let other = await #expect(throws: StoreError.self) {
                try await withPostgresStore(url, sealer: try Self.sealer()) { _ in }
            }
            #expect(other?.code == .misconfigured)
            #expect(other?.message.contains("another secrets key") == true)
            try await withPostgresStore(url, sealer: key) { store async throws in
                #expect(try await store.get(Self.secret().key)?.metadata.labels["rotated"] == "yes")
            }
        }
    }

    @Test(.enabled(if: PostgresTestServer.available, PostgresTestServer.skipReason))
    func postgresSealsPlainSecretsWhenAReplicaOpensItWithAKey() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url, configuration: .init(pollInterval: .milliseconds(200))) { store in
                _ = try await store.apply([Self.secret()])
                _ = try await store.apply([Self.secret().withLabel("rotated", "yes")])
            }
            #expect(try await Self.storedJSON(url).contains(Self.plaintext))
            let key = try Self.sealer()
            try await withPostgresStore(url, sealer: key) { store async throws in
                #expect(try await store.get(Self.secret().key)?.metadata.labels["rotated"] == "yes")
                #expect(try await store.get(Self.secret().key)?.body == Self.secret().body)
            }
            let after = try await Self.storedJSON(url)
            #expect(!after.contains(Self.plaintext), "a plain secret stayed in PostgreSQL")
            #expect(after.contains("sealed:v1:"))
        }
    }
}

extension Resource {
    fileprivate func withLabel(_ name: String, _ value: String) -> Resource {
        var copy = self
        copy.metadata.labels[name] = value
        return copy
    }
}
