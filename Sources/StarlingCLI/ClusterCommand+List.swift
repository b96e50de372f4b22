import ArgumentParser
import Foundation
import Yams

extension ClusterCommand {
    /// `starling cluster list [-o json|yaml]`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the local clusters: name, status, API address, loopback range, age."
        )

        /// How `list` prints.
        enum Format: String, ExpressibleByArgument, CaseIterable {
            case table
            case json
            case yaml
        }

        @Option(name: [.short, .customLong("output")], help: "Output format: table, json or yaml.")
        var output: Format = .table

        /// One row of `list -o json|yaml`.
        struct Row: Codable, Equatable {
            var name: String
            var status: ClusterState
            var pid: Int32?
            var api: String
            var admin: String
            var range: String
            var created: String
        }

        func run() async throws {
            let registry = ClusterCommand.registry()
            let (clusters, problems) = try registry.list()
            for problem in problems {
                FileHandle.standardError.write(Data("warning: skipping \(problem)\n".utf8))
            }
            let rows = Self.rows(clusters, registry: registry)
            switch output {
            case .table:
                if rows.isEmpty {
                    print("no local clusters in \(registry.clustersDirectory); create one with `starling cluster create NAME`")
                } else {
                    print(Self.table(rows, now: Date()), terminator: "")
                }
            case .json:
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            case .yaml:
                print(try YAMLEncoder().encode(rows), terminator: "")
            }
        }

        static func rows(_ clusters: [ClusterRecord], registry: ClusterRegistry) -> [Row] {
            clusters.map { record in
                let (state, pid) = registry.state(of: record.name)
                return Row(
                    name: record.name,
                    status: state,
                    pid: pid,
                    api: record.apiAddress,
                    admin: record.adminAddress,
                    range: record.addressRange,
                    created: record.created.formatted(.iso8601)
                )
            }
        }

        /// The aligned `NAME  STATUS  API  RANGE  AGE` table, one line per row, newline-terminated.
        static func table(_ rows: [Row], now: Date) -> String {
            var lines = [["NAME", "STATUS", "API", "RANGE", "AGE"]]
            for row in rows {
                let created = (try? Date(row.created, strategy: .iso8601)) ?? now
                lines.append([row.name, row.status.rawValue, row.api, row.range, age(from: created, to: now)])
            }
            var widths = [Int](repeating: 0, count: 5)
            for line in lines {
                for (column, cell) in line.enumerated() { widths[column] = max(widths[column], cell.count) }
            }
            return lines.map { line in
                line.enumerated().map { column, cell in
                    column == line.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
                }.joined()
            }.joined(separator: "\n") + "\n"
        }

        /// kubectl-style age: `42s`, `5m`, `3h`, `12d`.
        static func age(from created: Date, to now: Date) -> String {
            let seconds = max(0, Int(now.timeIntervalSince(created)))
            switch seconds {
            case ..<120: return "\(seconds)s"
            case ..<(120 * 60): return "\(seconds / 60)m"
            case ..<(48 * 3600): return "\(seconds / 3600)h"
            default: return "\(seconds / 86400)d"
            }
        }
    }
}
