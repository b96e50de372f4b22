#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Process plumbing for local clusters: starting a controller detached from the terminal, telling
/// whether it still runs, stopping it, and probing its admin endpoint.
enum ClusterProcess {
    /// The absolute path of the running executable (`/proc/self/exe` resolved), so the controller's
    /// command line shows a real path rather than `/proc/self/exe`.
    static func currentExecutable() throws(CLIError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else {
            throw CLIError(
                "cannot find this program's own path: readlink /proc/self/exe failed: "
                    + ContextFileIO.errorString(errno)
            )
        }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Default dispositions and an empty signal mask for a spawned child: the parent (this CLI)
    /// may ignore or block signals the child must react to, and both are inherited across exec.
    static func setDefaultSignals(_ attributes: inout posix_spawnattr_t, extraFlags: Int32 = 0) {
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(extraFlags | Int32(POSIX_SPAWN_SETSIGDEF) | Int32(POSIX_SPAWN_SETSIGMASK)))
    }

    /// Starts `executable` with `arguments` in a new session (no controlling terminal, not killed by
    /// the shell's SIGHUP or Ctrl-C), stdin from `/dev/null`, stdout and stderr appended to `logPath`,
    /// and no other inherited file descriptors. Returns its pid.
    static func spawnDetached(executable: String, arguments: [String], logPath: String) throws(CLIError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        closeInheritedDescriptors(&actions)

        setDefaultSignals(&attributes, extraFlags: posixSpawnSetSID)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw CLIError("cannot start \(executable): \(ContextFileIO.errorString(result))")
        }
        return pid
    }

    /// glibc's `POSIX_SPAWN_SETSID` (spawn.h, glibc ≥ 2.26): the child calls `setsid()`. Swift's Glibc
    /// module is imported without `_GNU_SOURCE`, which hides the macro, so it is spelled out here.
    private static let posixSpawnSetSID: Int32 = 0x80

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// Makes the child close every descriptor from 3 up, so it cannot hold this CLI's pipes open
    /// (`$(starling cluster create x)` would never finish) nor a proxy's sockets (`starling run`'s
    /// application, ``ChildProcess``). Uses glibc's
    /// `posix_spawn_file_actions_addclosefrom_np` (2.34+, looked up at run time because the GNU
    /// declarations are hidden from Swift); otherwise closes each inheritable (non-close-on-exec)
    /// descriptor listed in `/proc/self/fd`. Used by both posix_spawn sites (``spawnDetached``,
    /// ``ChildProcess/start(_:environment:)``); ChildFDsTests checks the children's descriptors.
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
            if addCloseFrom(&actions, 3) == 0 { return }
        }
        // Fallback (glibc < 2.34): racy. A descriptor another thread opens without close-on-exec
        // between this listing and the spawn is inherited. One closed in between is no error: glibc
        // and musl ignore EBADF on a close action.
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in entries.compactMap(Int32.init) where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }
    }

    /// True when `pid` names a live (not zombie) process.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0, errno != EPERM { return false }
        // A zombie still answers kill(0); its state in /proc/PID/stat is 'Z'.
        if let stat = try? ContextFileIO.readIfPresent("/proc/\(pid)/stat") {
            let text = String(decoding: stat, as: UTF8.self)
            if let close = text.lastIndex(of: ")") {
                let state = text[text.index(after: close)...].drop { $0 == " " }.first
                if state == "Z" || state == "X" { return false }
            }
        }
        return true
    }

    /// The argument vector of `pid` from `/proc/PID/cmdline`, or nil when it cannot be read.
    static func commandLine(of pid: pid_t) -> [String]? {
        guard pid > 0, let bytes = try? ContextFileIO.readIfPresent("/proc/\(pid)/cmdline"), !bytes.isEmpty else {
            return nil
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    /// True when `pid` is alive and its command line is a controller (has the `controller`
    /// argument), and — when `clusterName` is given — is the controller of that cluster.
    static func isController(_ pid: pid_t, clusterName: String?) -> Bool {
        guard isAlive(pid), let argv = commandLine(of: pid), argv.contains("controller") else { return false }
        guard let clusterName else { return true }
        return argv.contains(clusterName) || argv.contains("--cluster-name=\(clusterName)")
    }

    /// Reaps `pid` if it is a child of this process that has exited, returning how it ended
    /// ("exit status 1", "signal 9"); nil when it still runs or is not our child.
    static func reapIfExited(_ pid: pid_t) -> String? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        let signal = status & 0x7F
        if signal == 0 { return "exit status \((status >> 8) & 0xFF)" }
        return "signal \(signal)"
    }

    /// Sends SIGTERM, waits up to `grace` for the process to go away, then sends SIGKILL.
    /// Returns false if it is still alive after the SIGKILL wait.
    static func stop(_ pid: pid_t, grace: Duration) async -> Bool {
        guard isAlive(pid) else { return true }
        kill(pid, SIGTERM)
        if await waitForExit(pid, timeout: grace) { return true }
        kill(pid, SIGKILL)
        return await waitForExit(pid, timeout: .seconds(5))
    }

    private static func waitForExit(_ pid: pid_t, timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            _ = reapIfExited(pid)
            if !isAlive(pid) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        _ = reapIfExited(pid)
        return !isAlive(pid)
    }

    /// The HTTP status of `GET path` on `host:port` (IPv4), or nil when nothing answers in `timeout`.
    /// A deliberately tiny HTTP/1.1 client: one request, `Connection: close`, status line only.
    static func httpStatus(host: String, port: Int, path: String, timeout: Duration) -> Int? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }

        #if canImport(Glibc) || canImport(Musl)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let (seconds, attoseconds) = timeout.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return nil }

        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: starling-cli\r\nConnection: close\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { return nil }

        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !response.contains(UInt8(ascii: "\n")), response.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            response.append(contentsOf: buffer[0..<count])
        }
        let statusLine = String(decoding: response.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let fields = statusLine.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else { return nil }
        return status
    }

    /// The last `count` lines of the file at `path` (empty when it cannot be read).
    static func tail(of path: String, lines count: Int) -> [String] {
        guard let bytes = try? ContextFileIO.readIfPresent(path) else { return [] }
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.suffix(count).map(String.init)
    }
}
