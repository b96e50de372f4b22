/// The dashboard's one page: plain HTML, CSS and JavaScript, served from the binary (nothing is
/// fetched from elsewhere). Two views: the overview (`#overview`, the default) renders
/// `/api/overview` every two seconds; the tap view (`#tap`) shows one cluster's live requests
/// from `/api/tap`, polled every second.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Starling dashboard</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
          :root { --ink: #1d2430; --muted: #6b7483; --line: #e3e6eb; --ok: #1f9d55; --bad: #d64545; --accent: #3d6fd8; }
          body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
          header { background: var(--ink); color: #fff; padding: 12px 24px; display: flex; gap: 16px; align-items: baseline; }
          header h1 { font-size: 18px; margin: 0; }
          header span { color: #aab3c2; }
          main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); }
          section.cluster { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; overflow-x: auto; }
          h2 { font-size: 16px; margin: 4px 0 8px; }
          h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 14px 0 6px; }
          table { border-collapse: collapse; min-width: 60%; }
          td.id { font-size: 12px; color: var(--muted); }
          th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
          th { color: var(--muted); font-weight: 600; font-size: 12px; }
          td.num { text-align: right; font-variant-numeric: tabular-nums; }
          .alive { color: var(--ok); font-weight: 600; } .dead { color: var(--bad); font-weight: 600; }
          .note { color: var(--muted); font-style: italic; }
          .error { color: var(--bad); }
          .bar { display: inline-block; height: 10px; background: var(--accent); border-radius: 2px; vertical-align: middle; }
          .share { display: inline-block; width: 220px; background: #eef1f6; border-radius: 2px; margin-right: 6px; }
          svg.spark { vertical-align: middle; }
          nav a { color: #fff; margin-right: 12px; text-decoration: none; opacity: .7; } nav a.on { opacity: 1; border-bottom: 2px solid #fff; }
          button.cluster { margin: 0 6px 8px 0; padding: 4px 10px; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
          button.cluster.on { background: var(--accent); color: #fff; border-color: var(--accent); }
          td.status-bad { color: var(--bad); font-weight: 600; }
        </style>
        </head>
        <body>
        <header><h1>Starling</h1><nav><a href="#overview" id="nav-overview">Overview</a><a href="#tap" id="nav-tap">Tap</a></nav><span id="status">loading…</span></header>
        <main id="clusters"></main>
        <script>
        const fmtPct = v => v == null ? "-" : (v * 100).toFixed(2) + "%";
        const fmtRps = v => v == null ? "-" : v.toFixed(2) + " rps";
        const fmtMs = v => v == null ? "-" : (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms";
        const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
        function spark(values) {
          if (!values || values.length < 2) return '<span class="note">collecting…</span>';
          const w = 120, h = 24, min = Math.min(...values), span = Math.max(...values) - min;
          const y = v => span > 0 ? h - 2 - (v - min) / span * (h - 4) : h / 2;
          const pts = values.map((v, i) => `${(i * w / (values.length - 1)).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
          return `<svg class="spark" width="${w}" height="${h}"><polyline fill="none" stroke="#3d6fd8" stroke-width="1.5" points="${pts}"/></svg>`;
        }
        // Who calls whom, drawn: calling workloads on the left, the services they call on the
        // right, one line per edge (green over mTLS, red without), its rate beside it.
        function topology(edges) {
          if (!edges || !edges.length) return '<p class="note">no calls yet</p>';
          const left = [...new Set(edges.map(e => e.source))].sort(), right = [...new Set(edges.map(e => e.destination))].sort();
          const row = 30, w = 760, h = Math.max(left.length, right.length) * row + 20, lx = 170, rx = w - 170;
          const y = (list, n) => 20 + list.indexOf(n) * row + (Math.max(left.length, right.length) - list.length) * row / 2;
          let svg = `<svg class="topology" width="${w}" height="${h}" data-edges="${edges.length}">`;
          for (const e of edges) {
            const y1 = y(left, e.source), y2 = y(right, e.destination), colour = e.secured ? "#1f9d55" : "#d64545";
            svg += `<line x1="${lx}" y1="${y1}" x2="${rx}" y2="${y2}" stroke="${colour}" stroke-width="${Math.min(6, 1 + Math.log10(1 + e.rps * 10))}"/>`;
            svg += `<text x="${lx + (rx - lx) * 0.72}" y="${y1 + (y2 - y1) * 0.72 - 4}" font-size="11" fill="#6b7483" text-anchor="middle">${fmtRps(e.rps)}${e.secured ? " · mTLS" : ""}</text>`;
          }
          for (const n of left) svg += `<circle cx="${lx}" cy="${y(left, n)}" r="5" fill="#3d6fd8"/><text x="${lx - 10}" y="${y(left, n) + 4}" font-size="12" text-anchor="end">${esc(n)}</text>`;
          for (const n of right) svg += `<circle cx="${rx}" cy="${y(right, n)}" r="5" fill="#1d2430"/><text x="${rx + 10}" y="${y(right, n) + 4}" font-size="12">${esc(n)}</text>`;
          return svg + "</svg>";
        }
        function table(head, rows) {
          if (!rows.length) return '<p class="note">none yet</p>';
          return `<table><tr>${head.map(h => `<th>${h}</th>`).join("")}</tr>${rows.map(r => `<tr>${r.join("")}</tr>`).join("")}</table>`;
        }
        const td = (v, num) => `<td${num ? ' class="num"' : ""}>${v}</td>`;
        function cluster(c) {
          let html = `<section class="cluster" data-cluster="${esc(c.name)}"><h2>cluster ${esc(c.name)}</h2>`;
          if (c.error) return html + `<p class="error">${esc(c.error)}</p></section>`;
          html += "<h3>Linked clusters and gateways</h3>" + table(["CLUSTER", "ALIVE", "SERVICES", "PROBE P50", "PROBE LATENCY"],
            c.gateways.map(g => [td(esc(g.cluster)), td(g.alive ? '<span class="alive">alive</span>' : '<span class="dead">dead</span>'),
              td(g.services, true), td(fmtMs(g.latencyP50Ms), true), td(spark(g.history))]));
          if (c.metricsError) html += `<p class="note" data-metrics-error>${esc(c.metricsError)}</p>`;
          html += "<h3>Traffic splits</h3>" + (c.splits.length ? c.splits.map(s =>
            `<p><b>${esc(s.namespace)}/${esc(s.name)}</b></p>` + table(["BACKEND", "WEIGHT", "SHARE", "SUCCESS", "RPS", "P50"],
              s.backends.map(b => [`<td data-leaf="${esc(b.leaf)}" data-share="${b.share == null ? "" : b.share}">${esc(b.leaf)}</td>`, td(b.weight, true),
                td(`<span class="share"><span class="bar" style="width:${Math.round((b.share || 0) * 220)}px"></span></span>${fmtPct(b.share)}`),
                td(fmtPct(b.figures.success), true), td(fmtRps(b.figures.rps), true), td(fmtMs(b.figures.latencyP50Ms), true)]))
          ).join("") : '<p class="note">none</p>');
          html += "<h3>Services (as callers see them)</h3>" + table(["NAMESPACE", "SERVICE", "SUCCESS", "RPS", "P50", "P95", "P99"],
            c.services.map(s => [td(esc(s.namespace)), td(esc(s.name)), td(fmtPct(s.figures.success), true), td(fmtRps(s.figures.rps), true),
              td(fmtMs(s.figures.latencyP50Ms), true), td(fmtMs(s.figures.latencyP95Ms), true), td(fmtMs(s.figures.latencyP99Ms), true)]));
          html += "<h3>Workloads (as they serve)</h3>" + table(["NAMESPACE", "WORKLOAD", "SUCCESS", "RPS", "P50", "P95", "P99"],
            (c.workloads || []).map(w => [td(esc(w.namespace)), `<td data-workload="${esc(w.name)}">${esc(w.name)}</td>`, td(fmtPct(w.figures.success), true),
              td(fmtRps(w.figures.rps), true), td(fmtMs(w.figures.latencyP50Ms), true), td(fmtMs(w.figures.latencyP95Ms), true),
              td(fmtMs(w.figures.latencyP99Ms), true)]));
          html += "<h3>Topology</h3>" + topology(c.edges);
          html += "<h3>Edges</h3>" + table(["FROM", "TO", "CLIENT ID", "SERVER ID", "mTLS", "RPS"],
            c.edges.map(e => [td(esc(e.source)), td(esc(e.destination)), `<td class="id">${esc(e.sourceIdentity)}</td>`, `<td class="id">${esc(e.destinationIdentity)}</td>`,
              td(e.secured ? '<span class="alive">✓</span>' : '<span class="dead">×</span>'), td(fmtRps(e.rps), true)]));
          return html + "</section>";
        }
        let view = "overview", clusterNames = [], tapCluster = null, tapAfter = 0, tapRows = [], tapError = null;
        // An identity as service-account.namespace (the whole name on hover) and its cluster.
        function idCell(side, id, cluster) {
          const short = id ? id.split(".serviceaccount.")[0] : "-";
          return `<td class="id" data-${side}="${esc(id || "")}" title="${esc(id || "")}">${esc(short)}${cluster ? " @" + esc(cluster) : ""}</td>`;
        }
        function tapView() {
          const buttons = clusterNames.map(n => `<button class="cluster${n === tapCluster ? " on" : ""}" data-tap-cluster="${esc(n)}">${esc(n)}</button>`).join("");
          let html = `<section class="cluster" id="tap"><h2>Live requests</h2><div>${buttons}</div>`;
          if (tapError) html += `<p class="error">${esc(tapError)}</p>`;
          html += table(["TIME", "PROXY", "WORKLOAD", "SOURCE", "DESTINATION", "METHOD", "AUTHORITY", "PATH", "STATUS", "LATENCY", "mTLS"],
            tapRows.slice().reverse().slice(0, 100).map(r => { const e = r.tapped.event; return [
              td(new Date(e.timestamp).toLocaleTimeString()), td(e.direction === "inbound" ? "in" : e.direction === "outbound" ? "out" : esc(e.direction)),
              td(esc(r.tapped.namespace + "/" + r.tapped.workload)),
              idCell("src", e.src_identity, e.src_cluster), idCell("dst", e.dst_identity, e.dst_cluster),
              td(esc(e.method)), td(esc(e.authority)), `<td data-path>${esc(e.path)}</td>`,
              `<td class="num${e.status >= 500 ? " status-bad" : ""}">${e.status}</td>`, td(fmtMs(e.latency_ms), true),
              td(e.tls ? '<span class="alive">✓</span>' : '<span class="dead">×</span>')]; }));
          document.getElementById("clusters").innerHTML = html + "</section>";
          document.querySelectorAll("button[data-tap-cluster]").forEach(b => b.onclick = () => {
            tapCluster = b.dataset.tapCluster; tapAfter = 0; tapRows = []; tapError = null; tapView(); pollTap();
          });
        }
        async function pollTap() {
          if (view !== "tap" || !tapCluster) return;
          const cluster = tapCluster;
          try {
            const reply = await (await fetch(`/api/tap?cluster=${encodeURIComponent(cluster)}&after=${tapAfter}`, {cache: "no-store"})).json();
            if (cluster !== tapCluster) return;
            tapError = reply.error || null;
            for (const e of reply.events) { tapRows.push(e); tapAfter = e.seq; }
            tapRows = tapRows.slice(-200);
            document.getElementById("status").textContent = `tapping ${cluster} · ${tapRows.length} requests · ${new Date().toLocaleTimeString()}`;
          } catch (e) {
            tapError = "the dashboard server does not answer: " + e;
          }
          tapView();
        }
        function route() {
          view = location.hash === "#tap" ? "tap" : "overview";
          document.getElementById("nav-overview").className = view === "overview" ? "on" : "";
          document.getElementById("nav-tap").className = view === "tap" ? "on" : "";
          if (view === "tap") { if (!clusterNames.length) refresh(); tapCluster = tapCluster || clusterNames[0] || null; tapView(); pollTap(); } else refresh();
        }
        async function refresh() {
          if (view !== "overview" && clusterNames.length) return;
          try {
            const overview = await (await fetch("/api/overview", {cache: "no-store"})).json();
            clusterNames = overview.clusters.map(c => c.name);
            if (view !== "overview") { route(); return; }
            document.getElementById("clusters").innerHTML = overview.clusters.map(cluster).join("");
            document.getElementById("status").textContent =
              `${overview.clusters.length} clusters · rates over ${overview.window} · ${new Date().toLocaleTimeString()}`;
          } catch (e) {
            document.getElementById("status").textContent = "the dashboard server does not answer: " + e;
          }
        }
        window.addEventListener("hashchange", route);
        route();
        setInterval(refresh, 2000);
        setInterval(pollTap, 1000);
        </script>
        </body>
        </html>
        """#
}
