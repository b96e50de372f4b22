/// The frontend's page: self-contained HTML, CSS and script (no external assets), which polls
/// `/api/state` every second and redraws the last answer, the tally per cluster and instance,
/// and the latest answers. Colours are derived from the cluster name, so each cluster keeps its
/// colour across reloads; errors are grey on red.
enum FrontendPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Starling demo frontend</title>
    <style>
      :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; background: #f4f6fa; }
      body { margin: 0; padding: 24px; }
      h1 { font-size: 20px; margin: 0 0 4px; }
      .sub { color: #667; font-size: 13px; margin-bottom: 20px; }
      .grid { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(320px, 1fr); gap: 20px; }
      .card { background: #fff; border-radius: 10px; padding: 18px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
      #last { color: #fff; border-radius: 10px; padding: 28px; margin-bottom: 20px; transition: background .3s; background: #889; }
      #last .message { font-size: 40px; font-weight: 700; word-break: break-word; }
      #last .meta { font-size: 18px; margin-top: 8px; opacity: .92; }
      table { width: 100%; border-collapse: collapse; font-size: 14px; }
      th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eceef3; }
      th { color: #667; font-weight: 600; }
      td.num { text-align: right; font-variant-numeric: tabular-nums; }
      .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
      .bar { height: 6px; border-radius: 3px; }
      .err { color: #b3261e; }
      #status { font-size: 12px; color: #667; margin-top: 12px; }
    </style>
    </head>
    <body>
    <h1>Starling demo frontend</h1>
    <div class="sub">calling <b id="upstream">…</b> <span id="via"></span> every second</div>
    <div id="last"><div class="message">waiting for the first answer…</div><div class="meta">&nbsp;</div></div>
    <div class="grid">
      <div class="card">
        <h2 style="font-size:16px;margin:0 0 10px">Answers by cluster and instance</h2>
        <table><thead><tr><th>cluster</th><th>instance</th><th class="num">count</th><th class="num">share</th><th style="width:30%"></th></tr></thead>
        <tbody id="tally"></tbody></table>
        <div id="total" style="margin-top:10px;font-size:13px;color:#667"></div>
      </div>
      <div class="card">
        <h2 style="font-size:16px;margin:0 0 10px">Last 20 answers</h2>
        <table><thead><tr><th>#</th><th>cluster</th><th>instance</th><th>answer</th><th class="num">ms</th></tr></thead>
        <tbody id="recent"></tbody></table>
      </div>
    </div>
    <div id="status"></div>
    <script>
    "use strict";
    function colour(cluster) {
      if (cluster === "error") return "#8a8f9c";
      let h = 0;
      for (const c of cluster) h = (h * 31 + c.codePointAt(0)) % 360;
      // Spread neighbours (workload1, workload2) far apart on the colour wheel.
      return "hsl(" + ((h * 137) % 360) + ", 62%, 45%)";
    }
    function cell(text, cls) {
      const td = document.createElement("td");
      td.textContent = text === null || text === undefined ? "" : String(text);
      if (cls) td.className = cls;
      return td;
    }
    function swatchCell(cluster) {
      const td = document.createElement("td");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour(cluster);
      td.appendChild(sw);
      td.appendChild(document.createTextNode(cluster));
      return td;
    }
    function render(state) {
      document.getElementById("upstream").textContent = state.upstream;
      document.getElementById("via").textContent = state.via;
      const last = document.getElementById("last");
      if (state.last) {
        const a = state.last;
        last.style.background = a.error ? "#b3261e" : colour(a.cluster);
        last.querySelector(".message").textContent = a.error ? a.error : (a.message || "(no message)");
        last.querySelector(".meta").textContent = a.error
          ? "error" + (a.status ? " " + a.status : "")
          : "cluster " + a.cluster + " · instance " + a.instance + (a.client ? " · seen client " + a.client : "");
      }
      const tally = document.getElementById("tally");
      tally.replaceChildren();
      for (const row of state.tally) {
        const tr = document.createElement("tr");
        tr.appendChild(swatchCell(row.cluster));
        tr.appendChild(cell(row.instance, row.cluster === "error" ? "err" : ""));
        tr.appendChild(cell(row.count, "num"));
        tr.appendChild(cell(row.percent.toFixed(1) + " %", "num"));
        const barCell = document.createElement("td");
        const bar = document.createElement("div");
        bar.className = "bar";
        bar.style.width = Math.max(1, row.percent) + "%";
        bar.style.background = colour(row.cluster);
        barCell.appendChild(bar);
        tr.appendChild(barCell);
        tally.appendChild(tr);
      }
      document.getElementById("total").textContent = state.total + " calls, " + state.errors + " errors";
      const recent = document.getElementById("recent");
      recent.replaceChildren();
      for (const a of state.recent) {
        const tr = document.createElement("tr");
        tr.appendChild(cell(a.sequence));
        tr.appendChild(swatchCell(a.cluster));
        tr.appendChild(cell(a.instance));
        tr.appendChild(cell(a.error ? a.error : a.message, a.error ? "err" : ""));
        tr.appendChild(cell(a.latencyMs.toFixed(1), "num"));
        recent.appendChild(tr);
      }
    }
    async function poll() {
      const status = document.getElementById("status");
      try {
        const response = await fetch("/api/state", { cache: "no-store" });
        if (!response.ok) throw new Error("HTTP " + response.status);
        render(await response.json());
        status.textContent = "updated " + new Date().toLocaleTimeString();
      } catch (e) {
        status.textContent = "cannot reach the frontend: " + e.message;
      }
    }
    poll();
    setInterval(poll, 1000);
    </script>
    </body>
    </html>
    """#
}
