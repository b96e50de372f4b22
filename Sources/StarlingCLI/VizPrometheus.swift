import Foundation
import StarlingDemoApps

/// The Prometheus `starling viz` reads: its configuration (scraping every proxy and controller of
/// a cluster through the controller's HTTP service discovery), the local one `viz install`
/// starts beside a local cluster's controller, and instant queries against it.
///
/// Layout beside a local cluster (`$STARLING_HOME/clusters/NAME/viz/`): `prometheus.yml`,
/// `prometheus.pid`, `prometheus.log`, `prometheus.url`, `data/`.
enum VizPrometheus {
    /// The port of a local cluster's Prometheus, on the cluster's own address.
    static let localPort = 9090
    /// The controller admin path of the HTTP service discovery document.
    static let targetsPath = "/prometheus/targets"

    /// A `prometheus.yml` that scrapes every target the controller at `adminServer` lists.
    static func configuration(cluster: String, adminServer: String, scrapeInterval: String) -> String {
        """
        # Written by `starling viz`: Prometheus finds every proxy and the controller of cluster
        # \(cluster) through the controller's HTTP service discovery; the targets carry the labels
        # `starling viz stat` groups by (cluster, component, namespace, workload, app).
        global:
          scrape_interval: \(scrapeInterval)
          evaluation_interval: \(scrapeInterval)
        scrape_configs:
        - job_name: starling-\(cluster)
          metrics_path: /metrics
          http_sd_configs:
          - url: http://\(adminServer)\(targetsPath)
            refresh_interval: \(scrapeInterval)

        """
    }

    struct Local {
        var directory: String
        var pidPath: String { directory + "/prometheus.pid" }
        var urlPath: String { directory + "/prometheus.url" }
        var configPath: String { directory + "/prometheus.yml" }
        var logPath: String { directory + "/prometheus.log" }
        var dataPath: String { directory + "/data" }

        init(clusterDirectory: String) { directory = clusterDirectory + "/viz" }

        /// The running Prometheus's pid, if this cluster has one.
        var runningPID: pid_t? {
            guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), ClusterProcess.isAlive(pid),
                ClusterProcess.commandLine(of: pid)?.first.map({ $0.hasSuffix("prometheus") }) == true
            else { return nil }
            return pid
        }

        /// The URL of the running Prometheus, if any.
        var url: String? {
            guard runningPID != nil else { return nil }
            return (try? String(contentsOfFile: urlPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Stops the Prometheus (if one runs) and removes its files; true when one was running.
        @discardableResult
        func remove() async -> Bool {
            var stopped = false
            if let pid = runningPID {
                stopped = await ClusterProcess.stop(pid, grace: .seconds(5))
            }
            try? FileManager.default.removeItem(atPath: directory)
            return stopped
        }
    }

    /// The `prometheus` executable on PATH.
    static func executable() throws -> String {
        if let found = try? ChildProcess.resolve("prometheus", path: ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") {
            return found
        }
        throw CLIError(
            "prometheus is not installed (no `prometheus` on PATH)",
            hint: "install Debian's package: apt-get install prometheus — then run this again")
    }

    /// One sample of an instant query's vector result: its labels and value.
    struct Sample {
        var labels: [String: String]
        var value: Double
    }

    /// Runs an instant PromQL query at `base` (`http://HOST:PORT`).
    static func query(_ promQL: String, at base: String, time: Double? = nil) async throws -> [Sample] {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "+&=#")
        let encoded = promQL.addingPercentEncoding(withAllowedCharacters: allowed) ?? promQL
        let instant = time.map { String(format: "&time=%.3f", $0) } ?? ""
        let response: DemoHTTPClient.Response
        do {
            response = try await DemoHTTPClient.get("\(base)/api/v1/query?query=\(encoded)\(instant)", timeout: .seconds(10))
        } catch {
            throw CLIError(
                "no Prometheus answers at \(base): \(error)",
                hint: "`starling viz install` starts one for a local cluster; otherwise pass --prometheus URL")
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw CLIError("Prometheus at \(base) answered \(response.status) with no JSON to a query")
        }
        guard response.status == 200, json["status"] as? String == "success",
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else {
            let reason = json["error"] as? String ?? "status \(response.status)"
            throw CLIError("Prometheus at \(base) refused the query \(promQL): \(reason)")
        }
        return result.compactMap { entry in
            guard let labels = entry["metric"] as? [String: String], let pair = entry["value"] as? [Any], pair.count == 2,
                let text = pair[1] as? String, let value = Double(text)
            else { return nil }
            return Sample(labels: labels, value: value)
        }
    }
}
