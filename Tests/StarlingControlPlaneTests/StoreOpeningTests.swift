import Foundation
import Logging
@testable import StarlingControlPlane
import StarlingCore
import StarlingStore
import Testing

/// A controller whose database cannot be reached at start keeps trying for its startup wait,
/// then gives up saying which database and why (tests/e2e/postgres-store.sh starts a replica
/// while PostgreSQL is down and sees it come up once the database is back).
@Suite(.timeLimit(.minutes(1)))
struct StoreOpeningTests {
    @Test func aDatabaseThatNeverAnswersIsGivenUpAfterTheStartupWaitNamingIt() async throws {
        // A port nothing listens on: bound, then closed.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let port = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> UInt16 in
                _ = bind(listener, raw, length)
                _ = getsockname(listener, raw, &length)
                return UInt16(bigEndian: pointer.pointee.sin_port)
            }
        }
        close(listener)

        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-store-opening-\(UUID().uuidString.prefix(8).lowercased())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = ControllerConfiguration(
            clusterName: "test", dataDirectory: directory, apiPort: 0, adminPort: 0,
            postgres: try PostgresStoreURL("postgres://starling@127.0.0.1:\(port)/starling", environment: ["PGPASSWORD": "x"]))
        configuration.storeStartupWait = .seconds(3)

        let started = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) {
            _ = try await StoreOpening.open(configuration, logger: Logger(label: "test"))
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(3), "gave up after \(waited), before its startup wait")
        #expect(waited < .seconds(15), "still trying after \(waited)")
        #expect(error?.code == .unavailable || error?.code == .noAnswer)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true, "\(error?.message ?? "")")
    }
}
