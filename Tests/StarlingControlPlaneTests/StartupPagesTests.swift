import Foundation
import Logging
@testable import StarlingCLI
import Testing

@Suite struct StartupPagesTests {
    /// Two mappings of the binary are read-only with no private copy (one has a page not yet
    /// written back to disk, which is not a private copy); the relocated one (read-only after
    /// relocation, its pages copies) and the writable one are not; another file's is not ours.
    static let smaps = """
        55e0a0000000-55e0a3304000 r-xp 00000000 fe:00 5359183                    /opt/bin/starling
        Size:              52240 kB
        Rss:               32632 kB
        Private_Clean:      1724 kB
        Private_Dirty:         0 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me
        55e0a3304000-55e0a345a000 r--p 03303000 fe:00 5359183                    /opt/bin/starling
        Rss:                1368 kB
        Private_Dirty:      1368 kB
        Anonymous:          1368 kB
        VmFlags: rd mr mw me ac
        55e0a345a000-55e0a5a04000 rw-p 03459000 fe:00 5359183                    /opt/bin/starling
        Private_Dirty:      4672 kB
        Anonymous:          4672 kB
        VmFlags: rd wr mr mw me ac
        55e0a5a04000-55e0a5a05000 r--p 055b0000 fe:00 5359183                    /opt/bin/starling
        Private_Dirty:         4 kB
        Anonymous:             0 kB
        7f0000000000-7f0000200000 r-xp 00000000 fe:00 1000                       /usr/lib/libc.so.6
        Private_Dirty:         0 kB
        Anonymous:             0 kB
        7f1000000000-7f1000021000 rw-p 00000000 00:00 0
        Anonymous:           132 kB
        """

    @Test func onlyTheExecutablesCleanReadOnlyMappingsAreReleased() {
        let ranges = StartupPages.cleanReadOnlyMappings(smaps: Self.smaps, of: "/opt/bin/starling")
        #expect(ranges == [0x55e0_a000_0000..<0x55e0_a330_4000, 0x55e0_a5a0_4000..<0x55e0_a5a0_5000])
    }

    @Test func aPathWithSpacesIsMatchedWhole() {
        let smaps = """
            1000-3000 r-xp 00000000 fe:00 1 /opt/my bin/starling
            Private_Dirty:         0 kB
            3000-5000 r-xp 00000000 fe:00 2 /opt/my
            Private_Dirty:         0 kB
            """
        #expect(StartupPages.cleanReadOnlyMappings(smaps: smaps, of: "/opt/my bin/starling") == [0x1000..<0x3000])
        #expect(StartupPages.cleanReadOnlyMappings(smaps: smaps, of: "/opt/my") == [0x3000..<0x5000])
    }

    /// In this very process: the test binary's code pages leave its RSS, and the code still
    /// runs afterwards (the pages come back from the page cache on first use).
    @Test func releasingUnmapsCodePagesAndTheProcessRunsOn() throws {
        #if os(Linux)
        // The file this test's code was loaded from (under `swift test`, a library the test
        // runner loaded, not /proc/self/exe).
        let executable = try #require(Self.fileMapping(address: unsafeBitCast(Self.marker, to: UInt.self)))
        func residentKB() throws -> Int {
            let smaps = try String(contentsOfFile: "/proc/self/smaps", encoding: .utf8)
            let ranges = Set(StartupPages.cleanReadOnlyMappings(smaps: smaps, of: executable).map(\.lowerBound))
            var total = 0
            var inRange = false
            for line in smaps.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if let first = fields.first, first.contains("-"), !first.hasSuffix(":"),
                   let low = UInt(first.split(separator: "-")[0], radix: 16) {
                    inRange = ranges.contains(low)
                } else if inRange, fields.first == "Rss:", fields.count >= 2, let kb = Int(fields[1]) {
                    total += kb
                }
            }
            return total
        }
        let before = try residentKB()
        try #require(before > 256, "the test binary's code should be mapped (\(before) kB)")
        let released = StartupPages.release(mappingsOf: executable, logger: Logger(label: "test"))
        let after = try residentKB()
        #expect((released ?? 0) > 0)
        #expect(after < before / 2, "resident code went from \(before) kB to \(after) kB")
        // Code runs on: parsing again pulls the parser's pages back in.
        #expect(StartupPages.cleanReadOnlyMappings(smaps: Self.smaps, of: "/opt/bin/starling").count == 2)
        #endif
    }

    private static let marker: @convention(c) () -> Int32 = { 7 }

    /// The path of the file mapped at `address`, from /proc/self/maps.
    private static func fileMapping(address: UInt) -> String? {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6 else { continue }
            let bounds = fields[0].split(separator: "-")
            if bounds.count == 2, let low = UInt(bounds[0], radix: 16), let high = UInt(bounds[1], radix: 16),
               (low..<high).contains(address) {
                return fields[5...].joined(separator: " ")
            }
        }
        return nil
    }
}
