import Foundation
import NIOCore
import NIOPosix
import StarlingObservability
import Synchronization
import Testing

/// The admin endpoint's streams (a proxy's tap) run in the server's task group: a stream's
/// producer ends when it is done (the response then ends), when the client goes away, or when
/// the server stops; none outlives its server.
@Suite(.timeLimit(.minutes(1)))
struct AdminStreamTests {
    /// Producers that have returned, by name.
    final class Ended: Sendable {
        private let names = Mutex<Set<String>>([])
        func add(_ name: String) { _ = names.withLock { $0.insert(name) } }
        func contains(_ name: String) -> Bool { names.withLock { $0.contains(name) } }
    }

    static func server(_ ended: Ended) async throws -> AdminServer {
        try await AdminServer(
            host: "127.0.0.1", port: 0,
            routes: .init(
                readiness: { nil }, metrics: { "" },
                streams: [
                    "/finite": { _ in
                        .stream(contentType: "text/plain", buffer: 8) { lines in
                            for line in ["one\n", "two\n", "three\n"] { lines.yield(line) }
                            ended.add("finite")
                        }
                    },
                    "/endless": { request in
                        .stream(contentType: "text/plain", buffer: 8) { lines in
                            lines.yield("open\n")
                            // Until cancelled: the client leaves, or the server stops.
                            while (try? await Task.sleep(for: .seconds(3600))) != nil {}
                            ended.add(request.query["name"] ?? "endless")
                        }
                    },
                ]))
    }

    static func get(_ path: String) -> ByteBuffer {
        ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: admin\r\n\r\n")
    }

    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        return condition()
    }

    @Test func aFiniteStreamSendsEveryChunkThenEndsTheResponse() async throws {
        let ended = Ended()
        let server = try await Self.server(ended)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await server.runStreams() }
            let (bytes, closed) = try await inboundRawExchange(port: server.port, send: Self.get("/finite"))
            let text = String(buffer: bytes)
            #expect(text.hasPrefix("HTTP/1.1 200 OK"))
            #expect(text.contains("one\n") && text.contains("two\n") && text.contains("three\n"), "got \(text)")
            #expect(text.hasSuffix("0\r\n\r\n"), "the chunked response ends: \(text)")
            #expect(closed)
            #expect(ended.contains("finite"))
            group.cancelAll()
        }
        await server.close()
    }

    @Test func aClientThatLeavesCancelsItsProducer() async throws {
        let ended = Ended()
        let server = try await Self.server(ended)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await server.runStreams() }
            // The exchange gives up after 300 ms and closes its connection.
            _ = try? await inboundRawExchange(port: server.port, send: Self.get("/endless?name=left"), timeout: .milliseconds(300))
            let left = try await Self.eventually { ended.contains("left") }
            #expect(left, "the producer still runs after its client left")
            group.cancelAll()
        }
        await server.close()
    }

    @Test func stoppingTheServerEndsItsOpenStreams() async throws {
        let ended = Ended()
        let server = try await Self.server(ended)
        let service = AdminServerService(server: server)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await service.run() }
            async let exchange = inboundRawExchange(port: server.port, send: Self.get("/endless?name=open"), timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(300))
            #expect(!ended.contains("open"))
            group.cancelAll()
            let stopped = try await Self.eventually { ended.contains("open") }
            #expect(stopped, "the stream outlived its server")
            let (bytes, closed) = try await exchange
            #expect(String(buffer: bytes).contains("open\n"))
            #expect(closed, "the client sees the response end")
        }
    }
}
