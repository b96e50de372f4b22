#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
@testable import StarlingCLI
import Testing

/// Issue #14, "Children get stdin, stdout and stderr only": a child that `starling run`
/// (``ChildProcess``) or `cluster create` / `viz` (``ClusterProcess/spawnDetached``) starts must not
/// inherit this process's other descriptors — above all a proxy's listening sockets, which NIO opens
/// without SOCK_CLOEXEC and which kept 4140/4143/4191 bound after the proxy died.
///
/// Each test opens descriptors the way the proxy leaves them (not close-on-exec: a listening TCP
/// socket and a plain file), spawns `sleep` through the real spawn function and lists
/// `/proc/CHILD/fd` from here while the child sleeps. Without the closing in
/// ``ClusterProcess/closeInheritedDescriptors(_:)`` both fail.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/fd"), "needs Linux /proc"))
struct ChildFDsTests {
    @Test func runChildGetsOnlyStandardStreams() async throws {
        let leaks = try InheritableDescriptors()
        defer { leaks.closeAll() }
        // What the child may get: the standard streams this process has open and inheritable.
        let standard = Set<Int32>([0, 1, 2].filter { fd in
            let flags = fcntl(fd, F_GETFD)
            return flags >= 0 && flags & FD_CLOEXEC == 0
        })

        let fds = try await withSignalDispositionsKept {
            let sleep = try ChildProcess.resolve("sleep", path: "/usr/bin:/bin")
            let child = try ChildProcess.start([sleep, "30"], environment: ["PATH": "/usr/bin:/bin"])
            let fds = await childDescriptors(child.pid, settlingTo: standard)
            kill(child.pid, SIGKILL)
            _ = await child.waitForExit()
            return fds
        }

        #expect(!fds.contains(leaks.listener), "the child holds the listening socket (fd \(leaks.listener))")
        #expect(!fds.contains(leaks.file), "the child holds the file (fd \(leaks.file))")
        #expect(fds == standard)
    }

    @Test func detachedChildGetsOnlyStandardStreams() async throws {
        let leaks = try InheritableDescriptors()
        defer { leaks.closeAll() }
        let directory = try CLITemporaryDirectory()
        defer { directory.cleanup() }
        let log = directory.path + "/child.log"

        let sleep = try ChildProcess.resolve("sleep", path: "/usr/bin:/bin")
        let pid = try ClusterProcess.spawnDetached(executable: sleep, arguments: ["30"], logPath: log)
        let fds = await childDescriptors(pid, settlingTo: [0, 1, 2])
        let targets = fds.sorted().map { childDescriptorTarget(pid, $0) }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}

        #expect(!fds.contains(leaks.listener), "the child holds the listening socket (fd \(leaks.listener))")
        #expect(!fds.contains(leaks.file), "the child holds the file (fd \(leaks.file))")
        #expect(fds == [0, 1, 2])
        let resolvedLog = (log as NSString).resolvingSymlinksInPath
        #expect(targets == ["/dev/null", resolvedLog, resolvedLog])
    }
}

/// Runs `body`, which starts children with ``ChildProcess/start(_:environment:onSignal:)``: that
/// makes this process ignore SIGTERM/SIGINT (it forwards them), so the dispositions are put back
/// after. Its forwarding dispatch sources cannot be cancelled from here and stay.
func withSignalDispositionsKept<T>(_ body: () async throws -> T) async rethrows -> T {
    var oldTerm = sigaction(), oldInt = sigaction()
    sigaction(SIGTERM, nil, &oldTerm)
    sigaction(SIGINT, nil, &oldInt)
    defer {
        sigaction(SIGTERM, &oldTerm, nil)
        sigaction(SIGINT, &oldInt, nil)
    }
    return try await body()
}

/// A listening TCP socket on 127.0.0.1 (port 0) and an open temporary file, both without
/// close-on-exec — what a child would inherit if the spawn did not close them.
private struct InheritableDescriptors {
    let listener: Int32
    let file: Int32
    private let filePath: String

    init() throws {
        #if canImport(Glibc) || canImport(Musl)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ChildFDsTestError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let error = errno
            close(fd)
            throw ChildFDsTestError("bind/listen 127.0.0.1:0: errno \(error)")
        }

        let path = FileManager.default.temporaryDirectory.path + "/starling-child-fds-\(UUID().uuidString)"
        let file = open(path, O_RDWR | O_CREAT, 0o600)
        guard file >= 0 else {
            let error = errno
            close(fd)
            throw ChildFDsTestError("open \(path): errno \(error)")
        }
        // Both really are inheritable, or the test would pass without the fix.
        guard fcntl(fd, F_GETFD) & FD_CLOEXEC == 0, fcntl(file, F_GETFD) & FD_CLOEXEC == 0 else {
            close(fd)
            close(file)
            unlink(path)
            throw ChildFDsTestError("descriptors unexpectedly close-on-exec")
        }
        self.listener = fd
        self.file = file
        self.filePath = path
    }

    func closeAll() {
        close(listener)
        close(file)
        unlink(filePath)
    }
}

private struct ChildFDsTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The descriptors `pid` has open, from `/proc/PID/fd`, once they are all in `allowed` or after
/// two seconds. posix_spawn returns after the exec, but the child's dynamic loader then opens each
/// shared library for a moment (fd 3 here); an inherited descriptor, in contrast, stays open for
/// good, so waiting for the listing to settle hides no leak.
private func childDescriptors(_ pid: pid_t, settlingTo allowed: Set<Int32>) async -> Set<Int32> {
    let deadline = ContinuousClock.now.advanced(by: .seconds(2))
    while true {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let fds = Set(entries.compactMap(Int32.init))
        if fds.isSubset(of: allowed) || ContinuousClock.now >= deadline { return fds }
        try? await Task.sleep(for: .milliseconds(10))
    }
}

/// What descriptor `fd` of `pid` refers to (the `/proc/PID/fd/FD` link).
private func childDescriptorTarget(_ pid: pid_t, _ fd: Int32) -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? "?"
}
