#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// Gives back the executable's start-up pages once a long-running process is serving.
///
/// `starling` is one static binary for every command, and starting a proxy touches code it
/// never runs again (argument parsing, configuration, the first certificate request, Foundation
/// and runtime set-up, the relocation table). The kernel maps file pages 64 KiB around every
/// page touched, so after start-up about 40 MB of the binary were mapped into each proxy, and
/// stayed counted in its RSS although a request runs through a fraction of it.
///
/// `release` drops this process's mappings of the executable's read-only, unmodified pages
/// (`MADV_DONTNEED`). The pages stay in the page cache, shared with every other process running
/// the binary; what the proxy runs next is mapped back in on first use (a minor fault). Those
/// pages were never written, so nothing is lost. Writable mappings (data, relocated pointers,
/// heap) and any mapping with a private page are left alone. See docs/data-plane.md, "Start-up pages".
enum StartupPages {
    /// The bytes released, or nil when nothing was (not Linux, a debugger attached, or the
    /// mappings could not be read).
    @discardableResult
    static func release(logger: Logger) -> Int? {
        #if os(Linux)
        guard !isTraced() else {
            logger.debug("start-up pages kept: a debugger is attached")
            return nil
        }
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            logger.debug("start-up pages kept: /proc/self/exe unreadable")
            return nil
        }
        return release(mappingsOf: executable, logger: logger)
        #else
        return nil
        #endif
    }

    /// Releases the clean read-only mappings of the file at `path` (the executable, or for a
    /// test, the library its code was loaded from).
    static func release(mappingsOf path: String, logger: Logger) -> Int? {
        #if os(Linux)
        guard let smaps = try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8) else {
            logger.debug("start-up pages kept: /proc/self/smaps unreadable")
            return nil
        }
        var released = 0
        for mapping in cleanReadOnlyMappings(smaps: smaps, of: path) {
            guard let address = UnsafeMutableRawPointer(bitPattern: mapping.lowerBound) else { continue }
            if madvise(address, Int(mapping.upperBound - mapping.lowerBound), MADV_DONTNEED) == 0 {
                released += Int(mapping.upperBound - mapping.lowerBound)
            } else {
                logger.debug("start-up pages kept: madvise failed", metadata: ["errno": "\(errno)"])
            }
        }
        logger.debug("start-up pages released", metadata: ["bytes": "\(released)"])
        return released
        #else
        return nil
        #endif
    }

    /// The address ranges of `path`'s mappings in `smaps` (the text of /proc/PID/smaps) that are
    /// not writable and hold no page of their own (`Anonymous:` 0). A mapping written to since
    /// (relocated pointers made read-only afterwards, text patched by a debugger) holds private
    /// copies that dropping would lose, and is left out. (`Private_Dirty` is no guide: it also
    /// counts page-cache pages not yet written back, as in a binary just built.)
    static func cleanReadOnlyMappings(smaps: String, of path: String) -> [Range<UInt>] {
        var result: [Range<UInt>] = []
        var current: (range: Range<UInt>, eligible: Bool)?
        func finish() {
            if let current, current.eligible { result.append(current.range) }
            current = nil
        }
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.contains("-"), fields.count >= 5, !first.hasSuffix(":") {
                finish()
                let bounds = first.split(separator: "-")
                guard bounds.count == 2, let low = UInt(bounds[0], radix: 16), let high = UInt(bounds[1], radix: 16),
                      low < high else { continue }
                let permissions = fields[1]
                let file = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
                current = (low..<high, file == path && !permissions.contains("w"))
            } else if first == "Anonymous:" {
                if fields.count >= 2, fields[1] != "0" { current?.eligible = false }
            }
        }
        finish()
        return result
    }

    private static func isTraced() -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("TracerPid:") {
            return line.dropFirst("TracerPid:".count).trimmingCharacters(in: .whitespaces) != "0"
        }
        return false
    }
}
