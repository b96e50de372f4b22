import Foundation
import Synchronization

/// A child command started by `starling run`: SIGTERM and SIGINT sent to starling are forwarded
/// to it (at once, or when `onSignal` decides), and its exit status becomes starling's.
///
/// Spawned with `posix_spawn` and default signal dispositions and an empty signal mask: this
/// process ignores SIGTERM/SIGINT (it forwards them) and its threads block signals, and both
/// would otherwise be inherited across exec — a child that can never be stopped.
///
/// The child gets stdin, stdout and stderr and no other descriptor: the proxy's listening sockets
/// (4140, 4143, 4191), its connections and its files are not created close-on-exec, and a child
/// holding them would keep the proxy's ports bound after the proxy died.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private var signalSources: [any DispatchSourceSignal] = []
    /// Set once the child's exit has been collected (its pid may then name another process):
    /// from then on nothing is sent to it.
    private let reaped = Mutex(false)

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `command`. A SIGTERM or SIGINT sent to this process goes to `onSignal` (on a
    /// background queue) when given, which forwards it with ``send(_:)`` when it is time;
    /// without it the signal is forwarded at once.
    static func start(
        _ command: [String], environment: [String: String], onSignal: (@Sendable (ChildProcess, Int32) -> Void)? = nil
    ) throws -> ChildProcess {
        let executable = try resolve(command[0], path: environment["PATH"] ?? "/usr/bin:/bin")
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        ClusterProcess.setDefaultSignals(&attributes)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + command.dropFirst()).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        ClusterProcess.closeInheritedDescriptors(&actions)
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw CLIError("cannot start \(command[0]): \(String(cString: strerror(result)))")
        }
        let child = ChildProcess(pid: pid)
        for signo in [SIGTERM, SIGINT] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [weak child] in
                if let child { if let onSignal { onSignal(child, signo) } else { child.send(signo) } }
            }
            source.resume()
            child.signalSources.append(source)
        }
        return child
    }

    /// Sends `signo` to the child, unless its exit has been collected.
    func send(_ signo: Int32) {
        reaped.withLock { reaped in
            if !reaped { _ = kill(pid, signo) }
        }
    }

    /// Waits for the child to exit; returns its exit status (128 + signal when killed).
    func waitForExit() async -> Int32 {
        let pid = self.pid
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                // Wait for the exit without collecting it, then collect it while `send` cannot
                // run: a signal never goes to a pid that was reused.
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
                var status: Int32 = 0
                self.reaped.withLock { reaped in
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    reaped = true
                }
                let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                continuation.resume(returning: code)
            }
        }
    }

    /// `name` as an executable on `path` (a colon-separated PATH); a name with a `/` as it is.
    static func resolve(_ name: String, path: String) throws -> String {
        if name.contains("/") { return name }
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CLIError("command not found: \(name)", hint: "give a full path or check PATH")
    }
}
