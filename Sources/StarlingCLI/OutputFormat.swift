import ArgumentParser

/// `-o` values shared by the commands that print resources or reports.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, wide, yaml, json, name

    static var allValueStrings: [String] { ["yaml", "json", "wide", "name"] }
}

/// Prints rows as aligned columns, like kubectl: two spaces between columns, no borders.
struct Table {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }
}

import Foundation

/// kubectl-style ages: `45s`, `12m`, `3h`, `5d`.
enum Age {
    static func since(_ rfc3339: String?, now: Date = Date()) -> String {
        guard let rfc3339, let date = ISO8601DateFormatter().date(from: rfc3339) else { return "<unknown>" }
        let s = max(0, Int(now.timeIntervalSince(date)))
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }
}
