import Foundation

/// A child command started by `starling run`: SIGTERM and SIGINT sent to starling are forwarded
/// to it, and its exit status becomes starling's.
final class ChildProcess: @unchecked Sendable {
    private let process: Process
    private var signalSources: [any DispatchSourceSignal] = []

    var pid: Int32 { process.processIdentifier }

    private init(process: Process) { self.process = process }

    static func start(_ command: [String], environment: [String: String]) throws -> ChildProcess {
        let process = Process()
        let executable = try resolve(command[0], path: environment["PATH"] ?? "/usr/bin:/bin")
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(command.dropFirst())
        process.environment = environment
        let child = ChildProcess(process: process)
        for signo in [SIGTERM, SIGINT] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [weak child] in
                if let pid = child?.process.processIdentifier, pid > 0 { kill(pid, signo) }
            }
            source.resume()
            child.signalSources.append(source)
        }
        do {
            try process.run()
        } catch {
            throw CLIError("cannot start \(command[0]): \(error.localizedDescription)")
        }
        return child
    }

    /// Waits for the child to exit; returns its exit status (128 + signal when killed).
    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [process] in
                process.waitUntilExit()
                let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
                continuation.resume(returning: status)
            }
        }
    }

    private static func resolve(_ name: String, path: String) throws -> String {
        if name.contains("/") { return name }
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CLIError("command not found: \(name)", hint: "give a full path or check PATH")
    }
}
