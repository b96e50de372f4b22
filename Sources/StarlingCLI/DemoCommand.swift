import ArgumentParser
import Foundation
import StarlingDemoApps

/// `starling demo [--check]` / `starling demo down`: DESIGN.md's whole walkthrough on this
/// machine, each step the same `starling` command an operator would type, shown as it runs.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole two-cluster walkthrough on this machine (Ctrl-C or `starling demo down` tears it down).",
        subcommands: [Up.self, Down.self], defaultSubcommand: Up.self)

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "up", abstract: "Run the walkthrough (the default).")

        @Flag(help: "Run unattended: send requests through the split, print the tally and the gateways, tear down, exit non-zero on any failure.")
        var check = false

        @Option(help: "Requests to send through the split with --check.")
        var requests: Int = 200

        func validate() throws {
            guard requests > 0, requests <= 100_000 else { throw ValidationError("--requests must be between 1 and 100000") }
        }

        func run() async throws {
            let demo = try DemoRunner()
            do {
                let frontend = try await demo.up()
                if check {
                    let ok = try await demo.verify(requests: requests)
                    demo.down()
                    if !ok { throw ExitCode.failure }
                    return
                }
                print("\n\u{1B}[1mOpen \(frontend) in a browser: the answers alternate between workload1 and workload2.\u{1B}[0m")
                if demo.vizInstalled {
                    let log = try demo.background("dashboard", ["dashboard", "--port", "\(DemoRunner.dashboardPort)"], env: [:])
                    // It prints its URL once it listens; a port already taken ends it instead.
                    let url = "http://127.0.0.1:\(DemoRunner.dashboardPort)/"
                    do {
                        try await demo.waitFor("the dashboard listens", timeout: .seconds(15)) {
                            try String(contentsOfFile: log, encoding: .utf8).contains(url)
                        }
                        print("\u{1B}[1mThe mesh's own view of both clusters: \(url) (starling dashboard)\u{1B}[0m")
                    } catch {
                        let said = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
                        print("× the dashboard did not start (\(said.isEmpty ? "no output" : said)); its log: \(log)")
                    }
                    print("Or: STARLING_CONFIG=\(demo.path("workload1.config")) starling viz stat trafficsplit/podinfo -n test")
                }
                print("Ctrl-C (or `starling demo down` from another shell) tears it all down.")
                await DemoRunner.waitForInterrupt()
                demo.down()
            } catch {
                print("× \(error)")
                print("tearing down ...")
                demo.down()
                throw ExitCode.failure
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop the demo's workloads and delete its clusters.")

        func run() async throws {
            try DemoRunner().down()
        }
    }
}

/// Drives the walkthrough by running this same executable, like an operator at a shell.
final class DemoRunner: @unchecked Sendable {
    let executable: String
    let directory: String
    let environment: [String: String]
    /// Where the interactive demo serves `starling dashboard`: below Linux's ephemeral range
    /// (32768–60999), where an outgoing connection of the demo's own processes can hold the
    /// dashboard's default 50750 when it starts.
    static let dashboardPort = 30750
    /// `viz install` ran in both clusters (Prometheus is installed).
    private(set) var vizInstalled = false

    init() throws {
        executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let home = StarlingPaths.home(environment: ProcessInfo.processInfo.environment)
        directory = (home as NSString).appendingPathComponent("demo")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["STARLING_HOME"] = home
        env.removeValue(forKey: "STARLING_CONFIG")
        environment = env
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    // MARK: - Steps

    /// Runs the walkthrough; returns the frontend's URL.
    func up() async throws -> String {
        down(quiet: true)
        section("two clusters")
        try step(["cluster", "create", "workload1"])
        try step(["cluster", "create", "workload2"])
        for c in ["workload1", "workload2"] {
            try step(["cluster", "credentials", c, "--export-file", path("\(c).config")])
        }
        section("a shared trust root, an issuer")
        try step(["certs", "create", "identity.starling.cluster.local", path("root.crt"), path("root.key"), "--profile", "root-ca", "--no-password", "--insecure", "--force"])
        try step(["certs", "create", "identity.starling.cluster.local", path("issuer.crt"), path("issuer.key"), "--profile", "intermediate-ca",
                  "--not-after", "8760h", "--no-password", "--insecure", "--ca", path("root.crt"), "--ca-key", path("root.key"), "--force"])
        for c in ["workload1", "workload2"] {
            section("install the mesh in \(c)")
            let env = ["STARLING_CONFIG": path("\(c).config")]
            try step(["check", "--pre"], env: env)
            try pipe(["install", "--identity-trust-anchors-file", path("root.crt"), "--identity-issuer-certificate-file", path("issuer.crt"),
                      "--identity-issuer-key-file", path("issuer.key")], into: ["apply", "-f", "-"], env: env)
            try step(["check"], env: env)
            try pipe(["multicluster", "install"], into: ["apply", "-f", "-"], env: env)
        }
        section("link the clusters both ways")
        try pipe(["multicluster", "link", "--cluster-name", "workload2", "--config", path("workload2.config")], into: ["apply", "-f", "-"],
                 env: ["STARLING_CONFIG": path("workload1.config")])
        try pipe(["multicluster", "link", "--cluster-name", "workload1", "--config", path("workload1.config")], into: ["apply", "-f", "-"],
                 env: ["STARLING_CONFIG": path("workload2.config")])
        section("podinfo in both clusters, the frontend in workload1")
        let podinfo1 = try background("podinfo-workload1", ["run", "-n", "test", "--service", "podinfo", "--port", "9898", "--", executable, "demo-app", "podinfo", "--message", "greetings from workload1"], env: ["STARLING_CONFIG": path("workload1.config")])
        let podinfo2 = try background("podinfo-workload2", ["run", "-n", "test", "--service", "podinfo", "--port", "9898", "--", executable, "demo-app", "podinfo", "--message", "greetings from workload2"], env: ["STARLING_CONFIG": path("workload2.config")])
        let frontend = try background("frontend", ["run", "-n", "test", "--service", "frontend", "--port", "8080", "--", executable, "demo-app", "frontend", "--upstream", "http://podinfo.test:9898/"], env: ["STARLING_CONFIG": path("workload1.config")])
        _ = (podinfo1, podinfo2)
        try await waitFor("podinfo registered in both clusters", timeout: .seconds(60)) {
            try self.capture(["get", "workload", "-n", "test"], env: ["STARLING_CONFIG": self.path("workload1.config")]).contains("podinfo")
                && self.capture(["get", "workload", "-n", "test"], env: ["STARLING_CONFIG": self.path("workload2.config")]).contains("podinfo")
        }
        section("export podinfo from workload2")
        try step(["label", "svc", "-n", "test", "podinfo", "mirror.starling.io/exported=true"], env: ["STARLING_CONFIG": path("workload2.config")])
        try await waitFor("mirror podinfo-workload2 in workload1", timeout: .seconds(15)) {
            try self.capture(["get", "svc", "-n", "test"], env: ["STARLING_CONFIG": self.path("workload1.config")]).contains("podinfo-workload2")
        }
        try step(["get", "svc", "-n", "test"], env: ["STARLING_CONFIG": path("workload1.config")])
        // The gateway's figures come from probes every few seconds: show them once there are some.
        try await waitFor("workload2's gateway answers probes", timeout: .seconds(30)) {
            try self.gatewayHasLatency(cluster: "workload2", env: ["STARLING_CONFIG": self.path("workload1.config")])
        }
        try step(["multicluster", "gateways"], env: ["STARLING_CONFIG": path("workload1.config")])
        try step(["check", "--multicluster"], env: ["STARLING_CONFIG": path("workload1.config")])
        section("split podinfo 50/50 between the clusters")
        let split = """
            apiVersion: split.smi-spec.io/v1alpha1
            kind: TrafficSplit
            metadata:
              name: podinfo
              namespace: test
            spec:
              service: podinfo
              backends:
              - service: podinfo
                weight: 50
              - service: podinfo-workload2
                weight: 50

            """
        try split.write(toFile: path("split.yaml"), atomically: true, encoding: .utf8)
        try step(["apply", "-f", path("split.yaml")], env: ["STARLING_CONFIG": path("workload1.config")])
        if (try? VizPrometheus.executable()) != nil {
            section("metrics: Prometheus beside each controller, read by `starling viz`")
            for c in ["workload1", "workload2"] {
                try step(["viz", "install", "--scrape-interval", "1s"], env: ["STARLING_CONFIG": path("\(c).config")])
            }
            vizInstalled = true
        } else {
            print("\nPrometheus is not installed: `apt-get install prometheus` adds `starling viz` to the walkthrough.")
        }
        guard let address = try await workloadAddress(log: frontend) else {
            throw CLIError("the frontend did not start; see \(frontend)")
        }
        return "http://\(address):8080/"
    }

    /// Sends requests through the split from the frontend's proxy; true when both clusters
    /// answered and nothing failed.
    func verify(requests: Int) async throws -> Bool {
        section("\(requests) requests through the split")
        guard let address = try await workloadAddress(log: path("frontend.log")) else { return false }
        let proxy = DemoHTTPClient.Address(host: address, port: 4140)
        /// One request through the frontend's proxy: the cluster that answered, or the error.
        func call() async -> String {
            do {
                let response = try await DemoHTTPClient.get("http://podinfo.test:9898/", via: proxy, timeout: .seconds(10))
                let cluster = (try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])?["cluster"] as? String
                return response.status == 200 ? (cluster ?? "unknown") : "error \(response.status) \(response.headers["starling-error"] ?? "")"
            } catch {
                return "error \(error)"
            }
        }
        // The split reaches the proxy through its destination watch a moment after `apply`: calls
        // made before then all go to the local podinfo. Count from the first call it routes
        // across; a call that fails meanwhile still counts as a failure.
        var tally: [String: Int] = [:]
        let deadline = ContinuousClock.now + .seconds(15)
        var before = 0
        var across = false
        while !across, ContinuousClock.now < deadline {
            let answer = await call()
            across = answer == "workload2"
            if !across { before += 1 }
            if answer.hasPrefix("error") { tally[answer, default: 0] += 1 }
        }
        print(across ? "✓ the split took effect after \(before) calls answered locally" : "× no call reached workload2 within 15 s")
        let viz = ["STARLING_CONFIG": path("workload1.config")]
        if vizInstalled {
            // A counter's first sample counts no increase: the calls to measure come after
            // Prometheus has seen both backends' series (the frontend calls podinfo on its own).
            try await waitFor("Prometheus sees both backends of the split", timeout: .seconds(30)) {
                try self.splitMeasured(env: viz)
            }
        }
        for _ in 0..<requests {
            tally[await call(), default: 0] += 1
        }
        var table = Table(["CLUSTER", "ANSWERS", "SHARE"])
        for (k, v) in tally.sorted(by: { $0.key < $1.key }) {
            table.add([k, "\(v)", String(format: "%.1f%%", Double(v) * 100 / Double(requests))])
        }
        print(table.render())
        try step(["multicluster", "gateways"], env: ["STARLING_CONFIG": path("workload1.config")])
        var measured = true
        if vizInstalled {
            // The same split as the mesh measured it: each backend's share, success and latency
            // from Prometheus, the remote one behind workload2's gateway included.
            try await Task.sleep(for: .milliseconds(2500))  // two scrapes after the last call
            do {
                measured = try splitMeasured(env: viz)
                try step(["viz", "stat", "trafficsplit/podinfo", "-n", "test", "-t", "1m"], env: viz)
            } catch {
                measured = false
            }
            print(measured ? "✓ the mesh measured both backends of the split" : "× Prometheus has no figures for both backends of the split")
        }
        let errors = tally.filter { $0.key.hasPrefix("error") }.values.reduce(0, +)
        // A 50/50 split: each cluster's count within 3.5 standard deviations of half (for 200
        // requests, 76–124); a fair split falls outside about once in 2,000 runs.
        let spread = 3.5 * Double(requests).squareRoot() / 2
        let bounds = Int((Double(requests) / 2 - spread).rounded(.up))...Int((Double(requests) / 2 + spread).rounded(.down))
        let balanced = bounds.contains(tally["workload1"] ?? 0) && bounds.contains(tally["workload2"] ?? 0)
        if errors > 0 {
            print("× \(errors) of \(requests) requests failed")
        } else if !balanced {
            print("× the split is off: each cluster should answer \(bounds.lowerBound)–\(bounds.upperBound) of \(requests) requests")
        } else {
            print("✓ both clusters answered within \(bounds.lowerBound)–\(bounds.upperBound) of \(requests), no request failed")
        }
        return errors == 0 && balanced && measured
    }

    func down(quiet: Bool = false) {
        if let pids = try? String(contentsOfFile: path("pids"), encoding: .utf8) {
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) where pid > 1 { kill(pid, SIGTERM) }
            Thread.sleep(forTimeInterval: 1)
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) where pid > 1 { kill(pid, SIGKILL) }
            try? FileManager.default.removeItem(atPath: path("pids"))
        }
        for c in ["workload1", "workload2"] {
            let (status, _) = run(["cluster", "delete", c], env: [:])
            if !quiet, status == 0 { print("✓ cluster \(c) deleted") }
        }
    }

    // MARK: - Running commands

    private func section(_ title: String) { print("\n\u{1B}[1m== \(title)\u{1B}[0m") }

    private func display(_ args: [String], env: [String: String]) -> String {
        let prefix = env["STARLING_CONFIG"].map { "STARLING_CONFIG=\(($0 as NSString).lastPathComponent) " } ?? ""
        return prefix + "starling " + args.joined(separator: " ")
    }

    @discardableResult
    func step(_ args: [String], env: [String: String] = [:]) throws -> String {
        print("$ \(display(args, env: env))")
        let (status, output) = run(args, env: env)
        print(output, terminator: output.hasSuffix("\n") || output.isEmpty ? "" : "\n")
        guard status == 0 else { throw CLIError("step failed: starling \(args.joined(separator: " "))") }
        return output
    }

    func capture(_ args: [String], env: [String: String]) throws -> String {
        let (status, output) = run(args, env: env)
        guard status == 0 else { throw CLIError("starling \(args.joined(separator: " ")) failed: \(output)") }
        return output
    }

    func pipe(_ first: [String], into second: [String], env: [String: String]) throws {
        print("$ \(display(first, env: env)) | starling \(second.joined(separator: " "))")
        let (status, yaml) = run(first, env: env, merge: false)
        guard status == 0 else { throw CLIError("step failed: starling \(first.joined(separator: " ")): \(yaml)") }
        let (applied, output) = run(second, env: env, stdin: Data(yaml.utf8))
        print(output, terminator: output.hasSuffix("\n") ? "" : "\n")
        guard applied == 0 else { throw CLIError("step failed: starling \(second.joined(separator: " "))") }
    }

    func run(_ args: [String], env: [String: String], stdin: Data? = nil, merge: Bool = true) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.environment = environment.merging(env) { _, new in new }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = merge ? out : FileHandle.standardError
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        do { try process.run() } catch { return (127, "cannot run \(executable): \(error)") }
        if let stdin {
            input.fileHandleForWriting.write(stdin)
            try? input.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Starts a long-running command with its output in `NAME.log`; returns the log's path.
    func background(_ name: String, _ args: [String], env: [String: String]) throws -> String {
        print("$ \(display(args, env: env)) &    # log: \(path("\(name).log"))")
        let log = path("\(name).log")
        FileManager.default.createFile(atPath: log, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: log) else { throw CLIError("cannot write \(log)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.environment = environment.merging(env) { _, new in new }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let pids = (try? String(contentsOfFile: path("pids"), encoding: .utf8)) ?? ""
        try (pids + "\(process.processIdentifier)\n").write(toFile: path("pids"), atomically: true, encoding: .utf8)
        return log
    }

    func waitFor(_ what: String, timeout: Duration, _ condition: @escaping () throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if (try? condition()) == true {
                print("✓ \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        throw CLIError("timed out waiting for \(what)")
    }

    /// True when `viz stat trafficsplit/podinfo` has a measured share for both backends.
    func splitMeasured(env: [String: String]) throws -> Bool {
        let json = try capture(["viz", "stat", "trafficsplit/podinfo", "-n", "test", "-t", "1m", "-o", "json"], env: env)
        let rows = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        let shares = rows.compactMap { ($0["share"] as? NSNumber)?.doubleValue }
        return rows.count == 2 && shares.count == 2 && shares.allSatisfy { $0 > 0 }
    }

    /// True when `multicluster gateways` shows `cluster`'s gateway alive with a probe latency.
    func gatewayHasLatency(cluster: String, env: [String: String]) throws -> Bool {
        let json = try capture(["multicluster", "gateways", "-o", "json"], env: env)
        let rows = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        return rows.contains { $0["cluster"] as? String == cluster && $0["alive"] as? Bool == true && $0["latencyP50Ms"] != nil }
    }

    /// The workload address `starling run` logged ("workload started ... address=...").
    func workloadAddress(log: String) async throws -> String? {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .utf8),
                let range = text.range(of: "address=") {
                let rest = text[range.upperBound...]
                return String(rest.prefix { $0 != " " && $0 != "\n" })
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        return nil
    }

    static func waitForInterrupt() async {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
            let once = OnceFlag()
            for s in sources {
                s.setEventHandler {
                    if once.take() {
                        sources.forEach { $0.cancel() }
                        continuation.resume()
                    }
                }
                s.resume()
            }
        }
    }
}

/// A flag that can be taken once, from any thread.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var taken = false
    func take() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if taken { return false }
        taken = true
        return true
    }
    /// Whether it was taken.
    var isTaken: Bool {
        lock.lock()
        defer { lock.unlock() }
        return taken
    }
}
